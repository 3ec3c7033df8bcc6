"""The store interface, one suite for both stores: the SQLite file of a run directory and a
real PostgreSQL database (Debian's server, started by the test set-up)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import SMOL, ScriptedBackend
from slmscope import analysis
from slmscope.report.html import write_report
from slmscope.runs import Result, RunSpec, StepRecord, sweep
from slmscope.runs.records import RESULT_COLUMNS, STEP_COLUMNS
from slmscope.runs.store import SqlStore, Store, StoreError
from slmscope.runs.store_pg import PostgresStore, redacted

Opener = Callable[[], SqlStore]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener]]:
    """(where, how to open it) for each kind of store."""
    if request.param == "sqlite":
        yield str(tmp_path / "run"), lambda: Store(tmp_path / "run")
    else:
        url = request.getfixturevalue("postgres_url")
        yield url, lambda: PostgresStore(url)


def result(key: str, outcome: str = "ok", **changes: object) -> Result:
    row = Result(
        run_id="r1", cell_key=key, model="m", paradigm="single", harness="repair",
        dataset="builtin:sentiment", task_type="sentiment", sample_id=key, outcome=outcome,
        score=1.0, gold="positive", prompt_tokens=10, completion_tokens=5, cached_tokens=0,
        total_tokens=15, n_calls=2, latency_s=0.5, energy_method="estimate",
        usage_source="backend", created_at="2026-01-01T00:00:00", final_answer="positive",
        ttft_s=0.1, energy_j=1.5, queue_s=0.25, energy_shared=2,
    )  # fmt: skip
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def steps(key: str, n: int = 2) -> list[StepRecord]:
    return [
        StepRecord(
            run_id="r1",
            cell_key=key,
            model="m",
            paradigm="single",
            dataset="builtin:sentiment",
            sample_id=key,
            agent="single",
            turn=t,
            messages="[]",
            output=f"turn {t}",
            harness="repair",
            repair=t == 2,
            prompt_tokens=5,
            completion_tokens=2,
            tool=None,
        )
        for t in range(1, n + 1)
    ]


def test_records_round_trip_unchanged(target: tuple[str, Opener]) -> None:
    _, open_store = target
    store = open_store()
    store.start_run("r1", "2026-01-01T00:00:00", spec={"a": 1}, versions={}, machine={}, models={})
    assert store.write_sample(result("k1"), steps("k1"))
    assert store.results() == [result("k1")]  # every field, types included (bools, floats)
    assert store.steps("k1") == steps("k1") and store.steps() == steps("k1")
    assert store.done_keys() == {"k1"}
    store.close()


def test_a_cell_written_twice_is_kept_once(target: tuple[str, Opener]) -> None:
    """Two writers finishing the same cell (a shared database): the first stands, whole."""
    _, open_store = target
    first, second = open_store(), open_store()
    assert first.write_sample(result("k1"), steps("k1"))
    assert not second.write_sample(result("k1", score=0.0), steps("k1", n=3))
    assert [r.score for r in first.results()] == [1.0] and len(first.steps()) == 2
    first.close()
    second.close()


def test_runs_abandon_forget_and_bad_rows(target: tuple[str, Opener]) -> None:
    _, open_store = target
    store = open_store()
    for run in ("killed", "r1"):
        store.start_run(run, f"2026-01-01T00:0{len(run)}", spec={}, versions={}, machine={},
                        models={})  # fmt: skip
    store.finish_run("r1", "2026-01-01T00:09:00", "complete")
    assert store.abandon_runs("2026-01-02T00:00:00") == 1
    assert {r["run_id"]: r["status"] for r in store.runs()} == {
        "killed": "abandoned",
        "r1": "complete",
    }
    store.write_sample(result("k1"), steps("k1"))
    store.write_sample(result("k2", "timeout"), steps("k2"))
    store.forget(["k2"])
    assert store.done_keys() == {"k1"} and {s.cell_key for s in store.steps()} == {"k1"}
    store.write_bad_rows("r1", [{"source": "f.jsonl", "line": 3, "field": "x", "message": "m"}])
    assert [(b["source"], b["line"]) for b in store.bad_rows()] == [("f.jsonl", 3)]
    store.close()


def test_both_stores_have_the_same_tables_and_columns(tmp_path: Path, postgres_url: str) -> None:
    sqlite, postgres = Store(tmp_path / "run"), PostgresStore(postgres_url)
    for table, names in (("results", RESULT_COLUMNS), ("steps", STEP_COLUMNS)):
        assert sqlite._columns(table) == postgres._columns(table) == {"id", *names}
    sqlite.close()
    postgres.close()


def test_a_sweep_into_postgres_is_read_back_by_analysis_and_report(
    tmp_path: Path, postgres_url: str
) -> None:
    spec = RunSpec(models=(SMOL,), paradigms=("base",), tasks=("builtin:sentiment",), limit=3)
    backend = ScriptedBackend(["positive", "negative", "neutral"])
    summary = sweep(spec, tmp_path / "out", backends={SMOL: backend}, db=postgres_url)
    assert summary.done == 3 and summary.source == postgres_url
    assert not (tmp_path / "out" / "results.sqlite").exists()  # the database holds them
    frame = analysis.load(postgres_url)
    assert len(frame) == 3 and set(frame["outcome"]) == {"ok"}
    again = sweep(spec, tmp_path / "out", backends={SMOL: ScriptedBackend([])}, db=postgres_url)
    assert again.skipped == 3  # resumed from the database
    info = write_report([postgres_url], tmp_path / "report.html")
    assert info.samples == 3


def test_a_bad_database_is_a_clear_error() -> None:
    url = "postgresql://who:secret@127.0.0.1:1/nothing?connect_timeout=2"
    with pytest.raises(StoreError, match=r"postgresql://who:\*\*\*@127\.0\.0\.1:1/nothing"):
        PostgresStore(url)
    assert "secret" not in redacted(url)


def test_only_runs_of_dead_processes_here_are_abandoned(target: tuple[str, Opener]) -> None:
    """On a shared database a colleague's live run stays `running`."""
    import socket
    import subprocess

    _, open_store = target
    store = open_store()
    alive = subprocess.Popen(["sleep", "30"])
    here = socket.gethostname()
    machines = {
        "live-here": {"host": here, "pid": alive.pid},
        "elsewhere": {"host": "another-host", "pid": 1},
        "dead-here": {"host": here, "pid": 2**22 + 7},  # above any pid this kernel hands out
        "old": {},  # recorded before host and pid were kept
    }
    try:
        for run_id, machine in machines.items():
            store.start_run(run_id, "t", spec={}, versions={}, machine=machine, models={})
        assert store.abandon_runs("later") == 2
        statuses = {r["run_id"]: r["status"] for r in store.runs()}
    finally:
        alive.kill()
        store.close()
    assert statuses == {
        "live-here": "running",
        "elsewhere": "running",
        "dead-here": "abandoned",
        "old": "abandoned",
    }


def test_stale_samples_are_kept_and_marked(target: tuple[str, Opener]) -> None:
    _, open_store = target
    store = open_store()
    store.write_sample(result("k1", content="abc"), steps("k1"))
    store.write_sample(result("k2"), steps("k2"))
    store.mark_stale(["k1"])
    assert [(r.cell_key, r.stale, r.content) for r in store.results()] == [
        ("k1", True, "abc"),
        ("k2", False, None),
    ]
    store.close()
