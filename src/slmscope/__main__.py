from slmscope.cli import app

app(prog_name="slmscope")
