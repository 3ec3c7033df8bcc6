"""The calculator and the Python sandbox, attacked as the issue asks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmscope.tasks.builtin import SUITE
from slmscope.tools.base import Tool, ToolError
from slmscope.tools.calculator import Calculator, evaluate
from slmscope.tools.knowledge import KnowledgeSearch
from slmscope.tools.lookup import Lookup
from slmscope.tools.python_sandbox import PythonSandbox, SandboxLimits, run_python


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("growth(120, 150)", 25.0),
        ("cagr(100, 200, 5)", 14.8698355),
        ("ratio(3, 4)", 0.75),
        ("average(1, 2, 3, 4)", 2.5),
        ("15% * 200", 30.0),
        ("$1,234 + 1", 1235.0),
        ("(2 + 3) * 4 ** 2", 80.0),
        ("-3 // 2", -2.0),
        ("round(2.345, 2)", 2.35),
        ("2 ^ 10", 1024.0),
        ("max(1, 7, 3)", 7.0),
    ],
)
def test_calculator_values(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "not allowed"),
        ("__import__('os')", "unknown function"),
        ("(1).__class__", "not allowed"),
        ("x + 1", "names are not allowed"),
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 1000", "too large"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("1 +", "not an arithmetic expression"),
        ("1" + "+1" * 300, "longer than"),
        ("[1, 2]", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("10.0 ** 99 * 10.0 ** 99", "bounds"),
    ],
)
def test_calculator_refuses(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_calculator_never_raises_anything_but_tool_error(text: str) -> None:
    with contextlib.suppress(ToolError):
        evaluate(text)


def test_tools_follow_the_protocol() -> None:
    for tool in (Calculator(), PythonSandbox(), KnowledgeSearch(), Lookup("a")):
        assert isinstance(tool, Tool)
        assert tool.schema["type"] == "object" and tool.description
    assert asyncio.run(Calculator().run({"expression": "growth(100, 110)"})) == "10"
    with pytest.raises(ToolError, match="expression"):
        asyncio.run(Calculator().run({"expr": "1"}))


FAST = SandboxLimits(wall_s=5, cpu_s=5, output_bytes=4000)


def sandbox(code: str, limits: SandboxLimits = FAST) -> tuple[str, int | None, bool, bool]:
    r = asyncio.run(run_python(code, limits))
    return r.output, r.exit_code, r.timed_out, r.truncated


def test_sandbox_runs_code_and_returns_output() -> None:
    out, code, timed_out, _ = sandbox("import statistics\nprint(statistics.mean([1, 2, 6]))")
    assert (out, code, timed_out) == ("3\n", 0, False)
    out, _, _, _ = sandbox("open('n.txt', 'w').write('kept inside')\nprint(open('n.txt').read())")
    assert out == "kept inside\n"
    assert asyncio.run(PythonSandbox(FAST).run({"code": "print(6 * 7)"})) == "42\n"


def test_sandbox_has_no_network() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    out, code, _, _ = sandbox(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print('connected')"
    )
    waiter.join()
    server.close()
    assert accepted == [] and "connected" not in out and code != 0


def test_sandbox_cannot_write_outside_its_folder() -> None:
    target = Path(tempfile.gettempdir()) / f"slmscope-escape-{os.getpid()}"
    out, code, _, _ = sandbox(f"open({str(target)!r}, 'w').write('x')")
    assert code != 0 and "no writing outside the sandbox folder" in out
    assert not target.exists()
    out, code, _, _ = sandbox(f"import os\nos.remove({__file__!r})")
    assert code != 0 and Path(__file__).exists()


def test_sandbox_cannot_read_the_parents_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLMSCOPE_TEST_SECRET", "hunter2")
    out, code, _, _ = sandbox("import os\nprint(dict(os.environ))")
    assert code == 0 and "hunter2" not in out and "SLMSCOPE_TEST_SECRET" not in out


def test_sandbox_contains_a_fork_bomb() -> None:
    out, code, _, _ = sandbox("import os\nwhile True:\n    os.fork()")
    assert code != 0 and "os.fork is not allowed" in out
    out, code, _, _ = sandbox("import subprocess\nsubprocess.run(['sh', '-c', 'id'])")
    assert code != 0


def test_sandbox_contains_a_memory_bomb() -> None:
    start = time.monotonic()
    out, code, _, _ = sandbox(
        "x = bytearray(8 << 30)\nprint(len(x))", SandboxLimits(wall_s=5, memory_mb=512)
    )
    assert code != 0 and "MemoryError" in out and time.monotonic() - start < 5


def test_sandbox_stops_an_infinite_loop_in_time() -> None:
    start = time.monotonic()
    _, code, timed_out, _ = sandbox("while True:\n    pass", SandboxLimits(wall_s=1.5))
    assert timed_out and code is None and time.monotonic() - start < 4
    with pytest.raises(ToolError, match=r"longer than 1\.5 s"):
        asyncio.run(PythonSandbox(SandboxLimits(wall_s=1.5)).run({"code": "while 1: pass"}))


def test_sandbox_cuts_megabytes_of_output() -> None:
    out, code, _, truncated = sandbox("print('x' * 50_000_000)")
    assert truncated and len(out) == FAST.output_bytes and code is None
    text = asyncio.run(PythonSandbox(FAST).run({"code": "print('y' * 10**7)"}))
    assert text.endswith(f"[output cut at {FAST.output_bytes} bytes]")


def test_sandbox_refuses_ctypes_and_signals() -> None:
    out, code, _, _ = sandbox("import ctypes\nctypes.CDLL(None)")
    assert code != 0 and "ctypes.dlopen is not allowed" in out
    out, code, _, _ = sandbox(f"import os\nos.kill({os.getpid()}, 9)")
    assert code != 0


def test_sandbox_folder_is_removed_and_host_unharmed() -> None:
    before = set(Path(tempfile.gettempdir()).glob("slmscope-sandbox-*"))
    sandbox("open('big.bin', 'wb').write(b'0' * 1000)")
    assert set(Path(tempfile.gettempdir()).glob("slmscope-sandbox-*")) == before
    assert evaluate("1 + 1") == 2  # this process is still fine


def test_knowledge_search_finds_the_glossary_entry() -> None:
    search = KnowledgeSearch()
    top = search.search("how is the dividend yield computed", k=3)
    assert top and top[0][0].startswith("Dividend yield:")
    assert all(score > 0 for _, score in top)
    assert asyncio.run(search.run({"query": "qqqq zzzz"})).startswith("no passage matches")
    with pytest.raises(ToolError, match="query"):
        asyncio.run(search.run({"k": 2}))


def test_knowledge_search_takes_the_users_documents(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text(
        "# Travel policy\nEmployees fly economy on flights under "
        "six hours.\n\n# Expense limit\nMeals up to 40 EUR a day.\n"
    )
    (docs / "notes.txt").write_text("The fiscal year ends in June.\n\nAudits happen yearly.\n")
    search = KnowledgeSearch([docs], include_glossary=False)
    assert search.search("when does the fiscal year end")[0][0] == "The fiscal year ends in June."
    assert search.search("meal expense limit")[0][0].startswith("Expense limit:")
    with pytest.raises(FileNotFoundError):
        KnowledgeSearch([tmp_path / "missing"]).search("x")


def test_lookup_reads_cells_and_lines_of_the_task_context() -> None:
    task = SUITE["builtin:table_qa"]()[0]
    assert task.context
    lookup = Lookup(task.context)
    revenue_row = next(ln for ln in task.context.splitlines() if ln.startswith("| Revenue"))
    expected = [c.strip() for c in revenue_row.strip("|").split("|")][3]
    assert asyncio.run(lookup.run({"row": "revenue", "column": "2023"})) == expected
    with pytest.raises(ToolError, match="no column '2030'; columns:"):
        asyncio.run(lookup.run({"row": "Revenue", "column": "2030"}))
    with pytest.raises(ToolError, match="no row 'Profit'; rows: Revenue"):
        asyncio.run(lookup.run({"row": "Profit", "column": "2023"}))
    assert "Revenue" in asyncio.run(lookup.run({"query": "revenue"}))
    csv_lookup = Lookup("day,close\n1,10.5\n2,11.0")
    assert csv_lookup.cell("2", "close") == "11.0"
