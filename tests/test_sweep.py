"""The sweep as one library call: typed events and summary, typed records to the store and
back, abandoned runs, and configuration errors that name their place. (Scripted backends:
the real models run the same call through `slmscope run` in test_run.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMOL, ScriptedBackend
from slmscope.cli import app
from slmscope.errors import ConfigError, UserError
from slmscope.models.base import BackendError, BackendTimeout
from slmscope.runs import Result, RunSpec, StepRecord, sweep, sweep_async
from slmscope.runs.events import (
    RetryingFailed,
    RunsAbandoned,
    SampleDone,
    SweepInterrupted,
    SweepStarted,
)
from slmscope.runs.records import RESULT_COLUMNS, STEP_COLUMNS
from slmscope.runs.store import Store
from slmscope.tasks import TaskFileError, load_tasks

SPEC = RunSpec(models=(SMOL,), paradigms=("base",), tasks=("builtin:sentiment",), limit=3)


def test_sweep_returns_a_summary_and_typed_events(tmp_path: Path) -> None:
    events: list[object] = []
    backend = ScriptedBackend(["positive", "negative", "neutral"])
    summary = sweep(SPEC, tmp_path / "run", events.append, backends={SMOL: backend})
    assert (summary.planned, summary.skipped, summary.done) == (3, 0, 3)
    started = [e for e in events if isinstance(e, SweepStarted)]
    done = [e for e in events if isinstance(e, SampleDone)]
    assert len(started) == 1 and started[0].planned == 3
    assert [e.done for e in done] == [1, 2, 3] and all(e.todo == 3 for e in done)
    assert all(isinstance(e.result, Result) for e in done)
    frame = summary.results()
    assert list(frame.columns) == list(RESULT_COLUMNS) and len(frame) == 3
    assert list(summary.steps().columns) == list(STEP_COLUMNS)
    # The same call again resumes: nothing runs twice.
    again = sweep(SPEC, tmp_path / "run", backends={SMOL: ScriptedBackend([])})
    assert (again.skipped, again.done) == (3, 0) and len(again.results()) == 3


def test_sweep_runs_from_inside_an_event_loop(tmp_path: Path) -> None:
    """A notebook has a running loop: the sync call still works, and the async one too."""

    async def notebook() -> tuple[int, int]:
        first = sweep(SPEC, tmp_path / "a", backends={SMOL: ScriptedBackend(["positive"] * 3)})
        second = await sweep_async(
            SPEC, tmp_path / "b", backends={SMOL: ScriptedBackend(["positive"] * 3)}
        )
        return first.done, second.done

    assert asyncio.run(notebook()) == (3, 3)


def test_records_round_trip_through_the_store(tmp_path: Path) -> None:
    sweep(SPEC, tmp_path / "run", backends={SMOL: ScriptedBackend(["positive"] * 3)})
    store = Store.open(tmp_path / "run")
    results, steps = store.results(), store.steps()
    store.close()
    assert all(isinstance(r, Result) for r in results)
    assert all(isinstance(s, StepRecord) and s.repair is False for s in steps)
    db = sqlite3.connect(tmp_path / "run" / "results.sqlite")
    table = [row[1] for row in db.execute("PRAGMA table_info(results)")]
    db.close()
    assert table == ["id", *RESULT_COLUMNS]  # the table is the record
    assert dataclasses.asdict(results[0])["outcome"] == "ok"


def test_a_run_left_running_by_a_killed_process_is_marked_abandoned(tmp_path: Path) -> None:
    store = Store(tmp_path / "run")
    store.start_run("killed", "2026-01-01T00:00:00", spec={}, versions={}, machine={}, models={})
    store.close()
    events: list[object] = []
    sweep(SPEC, tmp_path / "run", events.append, backends={SMOL: ScriptedBackend(["x"] * 3)})
    assert [e.count for e in events if isinstance(e, RunsAbandoned)] == [1]
    store = Store.open(tmp_path / "run")
    statuses = {r["run_id"]: r["status"] for r in store.runs()}
    store.close()
    assert statuses.pop("killed") == "abandoned"
    assert list(statuses.values()) == ["complete"]


def test_an_interrupted_sweep_says_how_much_is_saved(tmp_path: Path) -> None:
    class Interrupting(ScriptedBackend):
        async def chat(self, messages, gen):  # type: ignore[no-untyped-def]
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return await super().chat(messages, gen)

    events: list[object] = []
    with pytest.raises(KeyboardInterrupt):
        sweep(SPEC, tmp_path / "run", events.append, backends={SMOL: Interrupting(["a", "b"])})
    (stop,) = [e for e in events if isinstance(e, SweepInterrupted)]
    assert stop.done == 2


def test_configuration_mistakes_are_user_errors_that_name_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.jsonl"
    fine = b'{"id": "a", "task_type": "qa", "prompt": "fine", "gold": "x"}'
    bad.write_bytes(fine + b'\n{"id": "b", "task_type": "qa", "prompt": "caf\xe9", "gold": "y"}\n')
    with pytest.raises(TaskFileError, match=r"tasks\.jsonl:2: not UTF-8 text \(byte 0xe9"):
        load_tasks(str(bad))
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    with pytest.raises(UserError, match=f"{taken}: cannot be a run directory"):
        sweep(SPEC, taken, backends={SMOL: ScriptedBackend([])})
    with pytest.raises(ConfigError, match="unknown harness 'loose'"):
        sweep(dataclasses.replace(SPEC, harnesses=("loose",)), tmp_path / "run")
    for args, says in (
        (["--tasks", str(bad)], "tasks.jsonl:2: not UTF-8 text"),
        (["--out", str(taken)], "cannot be a run directory"),
    ):
        result = CliRunner().invoke(app, ["run", "-m", SMOL, "-t", "builtin:sentiment", *args])
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output


def test_retry_failed_runs_again_only_backend_errors_and_timeouts(tmp_path: Path) -> None:
    flaky = ScriptedBackend(["positive", BackendTimeout("slow"), BackendError("bad gateway")])
    first = sweep(SPEC, tmp_path / "run", backends={SMOL: flaky})
    outcomes = list(first.results()["outcome"])
    assert outcomes == ["ok", "timeout", "backend_error"]
    plain = sweep(SPEC, tmp_path / "run", backends={SMOL: ScriptedBackend([])})
    assert plain.done == 0  # resuming alone never re-runs a stored failure
    events: list[object] = []
    healed = ScriptedBackend(["negative", "neutral"])
    again = sweep(SPEC, tmp_path / "run", events.append, backends={SMOL: healed}, retry_failed=True)
    assert [e.count for e in events if isinstance(e, RetryingFailed)] == [2]
    assert again.done == 2 and len(healed.calls) == 2
    assert list(again.results()["outcome"]) == ["ok", "ok", "ok"]


def test_single_fallback_reuses_the_single_and_base_cells_of_the_sweep(tmp_path: Path) -> None:
    spec = RunSpec(
        models=(SMOL,),
        paradigms=("single+fallback", "base", "single"),  # the fallback first: still reused
        tasks=("builtin:sentiment",),
        limit=2,
        harnesses=("strict",),
    )
    # Per sample: base answers; the agent never uses the protocol (5 turns), then fails.
    script = (["negative"] + ["no tags, sorry"] * 5) * 2
    backend = ScriptedBackend(script)
    frame = sweep(spec, tmp_path / "run", backends={SMOL: backend}).results()
    assert len(backend.calls) == 12  # nothing asked twice: the fallback ran no call of its own
    rows = {(r.paradigm, r.sample_id): r for r in frame.itertuples()}
    for sample in set(frame["sample_id"]):
        fallback, base, single = (rows[p, sample] for p in ("single+fallback", "base", "single"))
        assert fallback.agent_outcome == single.outcome == "no_final_answer"
        assert fallback.final_answer == base.final_answer == "negative"
        assert fallback.n_calls == single.n_calls + base.n_calls == 6  # both costs counted
        assert fallback.total_tokens == single.total_tokens + base.total_tokens
