"""Output of models and tools is data for every reader: the terminal (`slmscope trace`, the
tables) and a spreadsheet (CSV export). Written into a real run directory, read back through
the real commands."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from slmscope.cli import app
from slmscope.cli.app import console
from slmscope.report.escaping import spreadsheet_cell, terminal_text, visible
from slmscope.report.terminal import results_table
from slmscope.runs import Result, StepRecord
from slmscope.runs.store import Store

HOSTILE = "[/] [link=file:///etc/passwd]x[/link] \x1b[2J\x07\x00 \u202eevil"


def _run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    store = Store(folder)
    store.start_run("r1", "2026-01-01T00:00:00", spec={}, versions={}, machine={}, models={})
    row = Result(
        run_id="r1", cell_key="k1", model="m", paradigm="single", harness="repair",
        dataset="builtin:table_qa", task_type="table_qa", sample_id="s1", outcome="ok",
        score=1.0, gold="=HYPERLINK(\"http://x\")", prompt_tokens=10, completion_tokens=5,
        cached_tokens=0, total_tokens=15, n_calls=2, latency_s=0.5, energy_method="estimate",
        usage_source="backend", created_at="2026-01-01T00:00:00", final_answer="@SUM(A1)",
    )  # fmt: skip
    step = StepRecord(
        run_id="r1", cell_key="k1", model="m", paradigm="single", dataset="builtin:table_qa",
        sample_id="s1", agent="single", turn=1, messages="[]", output=HOSTILE,
        harness="repair", repair=False, prompt_tokens=5, completion_tokens=2, tool="python",
        tool_input=HOSTILE, observation='=HYPERLINK("http://evil","click")',
    )  # fmt: skip
    store.write_sample(row, [step])
    store.close()
    return folder


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 400)


def test_trace_prints_markup_and_escapes_as_text(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["trace", str(_run_dir(tmp_path)), "s1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b[2J" not in out and "\x07" not in out and "\x00" not in out
    assert "\u202e" not in out
    assert "[/] [link=file:///etc/passwd]x[/link] \\x1b[2J\\x07\\x00 \\u202eevil" in out
    assert out.count("[link=file:///etc/passwd]") == 2  # the reply and the tool input


def test_csv_export_runs_no_formula(tmp_path: Path) -> None:
    folder = _run_dir(tmp_path)
    result = CliRunner().invoke(app, ["export", str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.output
    with (folder / "export" / "steps.csv").open(newline="") as f:
        step = next(csv.DictReader(f))
    assert step["observation"] == '\'=HYPERLINK("http://evil","click")'
    with (folder / "export" / "results.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    assert row["gold"].startswith("'=") and row["final_answer"] == "'@SUM(A1)"
    assert row["score"] == "1.0"  # numbers stay numbers


def test_the_helpers_themselves() -> None:
    assert visible("a\tb\nc\x1b[0m\x9b") == "a\tb\nc\\x1b[0m\\x9b"
    assert terminal_text("[bold]x[/]") == "\\[bold]x\\[/]"
    assert [spreadsheet_cell(v) for v in ("-1+2", "+x", "ok", 3, "\tx")] == [
        "'-1+2", "'+x", "ok", 3, "'\tx",
    ]  # fmt: skip


def test_terminal_tables_show_names_as_text() -> None:
    summary = pd.DataFrame(
        [dict(model="[red]m[/]", paradigm="single", dataset="d\x1b[2J", n=1, score=0.5,
              score_lo=0.4, score_hi=0.6, completion_rate=1.0, tokens_mean=10.0,
              latency_mean=1.0)]
    )  # fmt: skip
    with console.capture() as captured:
        console.print(results_table(summary))
    out = captured.get()
    assert "[red]m[/]" in out and "d\\x1b[2J" in out and "\x1b[2J" not in out
