"""Bad input of any kind is one line that names the place, and loses nothing already computed:
settings, spec and task files, a second writer, SIGTERM, a results file deleted mid-run, a full
disk. Runs go against the fake server of tests/fake_openai.py (no model is loaded)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import FakeServer, fake_server
from slmscope.cli import app
from slmscope.errors import ConfigError
from slmscope.models.catalog import CATALOG, resolve
from slmscope.runs import RunSpec
from slmscope.runs.plan import ignored_settings
from slmscope.runs.spec_file import load_spec
from slmscope.tasks import TaskFileError, load_tasks

SMOL = "smollm2-135m-instruct"


def cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    return done.exit_code, done.output


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with fake_server() as running:
        yield running


def served_run(server: FakeServer, out: Path, *extra: str, model: str = "good") -> list[str]:
    return [
        "run", "-m", model, "--base-url", server.base_url, "-t", "builtin:sentiment",
        "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (("--max-tokens", "0"), "max_tokens must be a whole number >= 1, not 0"),
        (("--max-tokens", "-5"), "max_tokens must be a whole number >= 1, not -5"),
        (("--temperature", "-1"), "temperature must be >= 0, not -1.0"),
        (("--top-p", "5"), "top_p must be in (0, 1], not 5.0"),
        (("--n-ctx", "16"), "a context window of 16 tokens cannot hold a prompt and 256"),
    ],
)
def test_unusable_generation_settings_are_refused_at_the_edge(
    server: FakeServer, tmp_path: Path, option: tuple[str, str], said: str
) -> None:
    code, out = cli(*served_run(server, tmp_path / "run", *option))
    assert code == 2 and said in out and "Traceback" not in out
    assert out.count("\n") <= 2  # one line (a long one may wrap once)
    assert server.requests == [] and not (tmp_path / "run" / "results.sqlite").exists()


def test_a_spec_with_no_models_names_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text("paradigms: [base]\nmodels: []\ntasks: [builtin:sentiment]\n")
    with pytest.raises(ConfigError, match=r"sweep\.yaml:2: .*models.*empty"):
        load_spec(spec)
    spec.write_text("models: [smollm2-135m-instruct]\ngeneration:\n  top_p: 5\n")
    with pytest.raises(ConfigError, match=r"sweep\.yaml:2: .*top_p must be in"):
        load_spec(spec)


def test_task_config_errors_give_the_real_line(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("name: typo\ntask_type: sentiment\nchoises: [a, b]\n")
    with pytest.raises(TaskFileError, match=r"typo\.yaml:3: unknown key\(s\) \['choises'\]"):
        load_tasks(str(config))
    config.write_text("name: typo\ntask_type: poetry\n")
    with pytest.raises(TaskFileError, match=r"typo\.yaml:2: key 'task_type'"):
        load_tasks(str(config))


ROW = {"id": "a", "task_type": "sentiment", "prompt": "Profits rose.", "gold": "positive",
       "choices": ["positive", "negative"]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"gold": "bullish"}, "field 'gold': 'bullish' is not one of the choices"),
        ({"prompt": 12345}, "field 'prompt': expected text, got int 12345"),
        ({"choices": "positive"}, "field 'choices': expected a list of strings"),
    ],
)
def test_own_format_rows_are_checked(tmp_path: Path, change: dict[str, object], said: str) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({**ROW, "id": "z"}) + "\n" + json.dumps({**ROW, **change}) + "\n")
    with pytest.raises(TaskFileError, match=rf"mine\.jsonl:2: {said}"):
        load_tasks(str(path))


def test_files_that_are_not_task_files_say_what_they_are(tmp_path: Path) -> None:
    semi = tmp_path / "semi.csv"
    semi.write_text("id;task_type;prompt;gold\na;sentiment;p;positive\n")
    with pytest.raises(TaskFileError, match=r"semi\.csv:1: the header is one column holding ';'"):
        load_tasks(str(semi))
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(TaskFileError, match=r"data\.jsonl:0: is a folder, not a task file"):
        load_tasks(str(folder))


def test_skip_bad_rows_skips_unparseable_rows_of_own_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    good = json.dumps(ROW).encode()
    jsonl.write_bytes(good + b"\n{oops\n" + b'{"id": "\xff"}\n' + good.replace(b'"a"', b'"b"'))
    loaded = load_tasks(str(jsonl), skip_bad_rows=True)
    assert [t.id for t in loaded.tasks] == ["a", "b"]
    assert [(b.line, b.message.split(" (")[0]) for b in loaded.bad_rows] == [
        (2, "not valid JSON"), (3, "not UTF-8 text"),
    ]  # fmt: skip
    with pytest.raises(TaskFileError, match=r"mine\.jsonl:2: not valid JSON"):
        load_tasks(str(jsonl))
    table = tmp_path / "mine.csv"
    table.write_text("id,task_type,prompt,gold\na,sentiment,p,positive\nb,sentiment\n")
    loaded = load_tasks(str(table), skip_bad_rows=True)
    assert [t.id for t in loaded.tasks] == ["a"]
    assert [(b.line, b.message) for b in loaded.bad_rows] == [
        (3, "fewer cells than header columns")
    ]


def test_settings_a_run_has_no_use_for_are_said() -> None:
    spec = RunSpec(models=(SMOL,), paradigms=("base",), tasks=("builtin",), data_dir="/data",
                   concurrency=4)  # fmt: skip
    said = [(i.setting, i.why) for i in ignored_settings(spec, {SMOL: CATALOG[SMOL]})]
    assert said[0][0] == "--data /data" and "only built-in task sets" in said[0][1]
    assert said[1][0] == "--concurrency 4" and "one request at a time" in said[1][1]
    served = resolve("m", base_url="http://127.0.0.1:9/v1")
    finben = RunSpec(models=("m",), paradigms=("base",), tasks=("finben:fpb",), data_dir="/d",
                     concurrency=4)  # fmt: skip
    assert ignored_settings(finben, {"m": served}) == []


def test_trace_says_where_a_sample_is_stored(server: FakeServer, tmp_path: Path) -> None:
    code, _ = cli(*served_run(server, tmp_path / "run", "--limit", "1"))
    assert code == 0
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as con:
        sample = con.execute("SELECT sample_id FROM results").fetchone()[0]
    code, out = cli("trace", str(tmp_path / "run"), sample, "--paradigm", "multi")
    assert code == 2 and "it is stored under: good / base / none" in out


def background_run(
    server: FakeServer, out: Path, limit: int = 20, *, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    """`slmscope run` in its own process against the slow model (0.5 s a sample); with
    `sigint_ignored` as a script's background job starts (SIGINT ignored)."""
    argv = served_run(server, out, "--limit", str(limit), model="slow")
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen(
        [sys.executable, "-m", "slmscope", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore,
    )  # fmt: skip


def stored(out: Path) -> int:
    try:
        with sqlite3.connect(out / "results.sqlite") as con:
            return int(con.execute("SELECT count(*) FROM results").fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_for_samples(out: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while stored(out) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run stored nothing in 60 s"
        time.sleep(0.1)


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_sigterm_is_ctrl_c(server: FakeServer, tmp_path: Path, sigint_ignored: bool) -> None:
    out = tmp_path / "run"
    proc = background_run(server, out, sigint_ignored=sigint_ignored)
    wait_for_samples(out, 2, proc)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    kept = stored(out)
    assert kept >= 2 and f"interrupted: {kept} samples of this run are saved in {out}" in err
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"


def test_one_run_directory_has_one_writer(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = background_run(server, out)
    try:
        wait_for_samples(out, 1, proc)
        requests = len(server.requests)
        code, said = cli(*served_run(server, out, "--limit", "20"))
        assert code == 2 and "is being written by another slmscope process (pid" in said
        assert f"pid {proc.pid}" in said
        assert len([r for r in server.requests[requests:] if r.get("model") == "good"]) <= 1
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_a_results_file_deleted_mid_run_stops_it(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = background_run(server, out)
    wait_for_samples(out, 1, proc)
    for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "was deleted or replaced while this run wrote to it" in err
    assert err.count("error:") == 1


def test_a_full_disk_is_one_line_and_what_was_saved_stays(
    server: FakeServer, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        filler = small / "filler"
        with filler.open("wb") as f:  # leave about 160 kB free
            f.write(b"0" * (os.statvfs(small).f_bavail * os.statvfs(small).f_frsize - 160_000))
        code, said = cli(
            *served_run(
                server, small / "run", "--limit", "20", "-p", "single", "--harness", "repair"
            )
        )
        assert code == 2 and "database or disk is full" in said and "free some space" in said
        saved = int(said.split(" samples of this run are saved")[0].rsplit("(", 1)[-1])
        filler.unlink()
        assert stored(small / "run") == saved  # what was saved is whole and readable
        code, said = cli("report", str(small / "run"))  # 5 MB of page for 1 MB of disk
        assert code == 2 and "cannot write the report (No space left on device)" in said
        assert not list((small / "run").glob("*.partial"))  # nothing half-written left
        code, said = cli("report", str(small / "run"), "--html", str(tmp_path / "r.html"))
        assert code == 0 and f"({saved} samples" in said
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_waiting_for_the_model_is_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from slmscope.cli import progress
    from slmscope.runs.events import SweepStarted

    monkeypatch.setattr(progress, "WAIT_S", 0.2)
    view = progress.SweepView()
    try:
        view(SweepStarted("r1", Path("run"), 3, 0))
        time.sleep(0.7)
    finally:
        view.close()
    assert "waiting for the model: no sample finished for" in capsys.readouterr().err
