"""A dataset's identity is where it came from and what it holds: two files with the same stem
never overwrite each other, and an edited row is a new sample whose old result is kept apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMOL, ScriptedBackend
from slmscope import analysis
from slmscope.cli import app
from slmscope.errors import ConfigError
from slmscope.runs import RunSpec, sweep
from slmscope.runs.events import Event, StaleSamples
from slmscope.runs.store import Store


def task_file(path: Path, golds: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"r{i}", "task_type": "sentiment", "prompt": f"Headline {i}: profits rose.",
         "choices": ["positive", "negative", "neutral"], "gold": gold}
        for i, gold in enumerate(golds)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec_of(*files: Path) -> RunSpec:
    return RunSpec(models=(SMOL,), paradigms=("base",), tasks=tuple(str(f) for f in files))


def test_two_files_with_the_same_stem_are_refused_in_one_line(tmp_path: Path) -> None:
    a = task_file(tmp_path / "a" / "test.jsonl", ["positive", "negative"])
    b = task_file(tmp_path / "b" / "test.jsonl", ["neutral", "neutral"])
    backend = ScriptedBackend(["positive"] * 4)
    with pytest.raises(ConfigError, match=r"b/test\.jsonl: its dataset is named 'test', as is"):
        sweep(spec_of(a, b), tmp_path / "run", backends={SMOL: backend})
    assert backend.calls == []  # refused before anything ran
    done = CliRunner().invoke(
        app, ["run", "-m", SMOL, "-t", str(a), "-t", str(b), "--out", str(tmp_path / "r2")]
    )
    assert done.exit_code == 2 and "overwrite" in done.output
    assert not (tmp_path / "r2" / "results.sqlite").exists()


def test_the_same_reference_twice_runs_each_sample_once(tmp_path: Path) -> None:
    a = task_file(tmp_path / "a" / "test.jsonl", ["positive", "negative"])
    backend = ScriptedBackend(["positive"] * 2)
    summary = sweep(spec_of(a, a), tmp_path / "run", backends={SMOL: backend})
    assert (summary.planned, summary.done) == (2, 2)


def test_an_edited_row_is_a_new_sample_and_the_old_one_is_kept_apart(tmp_path: Path) -> None:
    data = task_file(tmp_path / "test.jsonl", ["positive", "negative", "neutral"])
    out = tmp_path / "run"
    first = sweep(spec_of(data), out, backends={SMOL: ScriptedBackend(["positive"] * 3)})
    assert first.done == 3
    assert list(analysis.load(out)["score"]) == [1.0, 0.0, 0.0]
    task_file(data, ["positive", "positive", "neutral"])  # the second row's gold is fixed
    events: list[Event] = []
    again = ScriptedBackend(["positive"])
    second = sweep(spec_of(data), out, events.append, backends={SMOL: again})
    assert (second.skipped, second.done) == (2, 1) and len(again.calls) == 1
    assert [e for e in events if isinstance(e, StaleSamples)] == [StaleSamples(1, 0, out)]
    table = analysis.load(out)  # the old result is not in any table
    assert sorted(zip(table["sample_id"], table["gold"], strict=True)) == [
        ("r0", "positive"), ("r1", "positive"), ("r2", "neutral"),
    ]  # fmt: skip
    assert analysis.tables.stale_count(out) == 1
    store = Store(out)
    kept = [r for r in store.results() if r.stale]
    store.close()
    assert [(r.sample_id, r.gold, r.score) for r in kept] == [("r1", "negative", 0.0)]
    # Resumed once more with the data as it is now: nothing runs, nothing more is stale.
    events.clear()
    third = sweep(spec_of(data), out, events.append, backends={SMOL: ScriptedBackend([])})
    assert (third.skipped, third.done) == (3, 0)
    assert not [e for e in events if isinstance(e, StaleSamples)]
