"""Concurrency against a served model, with a scripted server that takes time: samples run side
by side, each sample's turns stay in order, at most N requests are in flight, queue time is
apart from latency, overlapping calls split their energy, and a failure cancels cleanly.
(The real llama-server runs the same path in the benchmark, benchmarks/sweep.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import ScriptedBackend
from slmscope.metering.energy import EnergyReading
from slmscope.models.base import (
    Abilities,
    BackendUnavailable,
    Completion,
    GenerationConfig,
    Message,
)
from slmscope.models.metered import MeteredBackend
from slmscope.runs import RunSpec, sweep
from slmscope.runs.store import Store

URL = "http://127.0.0.1:9/v1"  # never contacted: the backend is given
MODEL = "served-model"


class SlowServer(ScriptedBackend):
    """Answers every call after `delay` seconds; counts the calls in flight."""

    def __init__(self, delay: float, fail_at: int | None = None) -> None:
        super().__init__([], name=MODEL, abilities=Abilities(parallel_slots=True))
        self.delay, self.fail_at = delay, fail_at
        self.in_flight = self.peak = 0
        self.order: list[tuple[str, int]] = []  # (sample text, turn) as the calls arrive

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        turn = sum(m["role"] == "assistant" for m in messages) + 1
        self.order.append((messages[-1]["content"][:40] if turn == 1 else "", turn))
        try:
            await asyncio.sleep(self.delay)
            if self.fail_at is not None and len(self.order) >= self.fail_at:
                raise BackendUnavailable("server gone", where=MODEL)
            self.replies = ["positive"]
            return await super().chat(messages, gen)
        finally:
            self.in_flight -= 1


def spec(concurrency: int, paradigms: tuple[str, ...] = ("base",)) -> RunSpec:
    return RunSpec(
        models=(MODEL,),
        paradigms=paradigms,
        tasks=("builtin:sentiment",),
        limit=8,
        base_url=URL,
        concurrency=concurrency,
    )


def test_requests_in_flight_are_bounded_and_samples_overlap(tmp_path: Path) -> None:
    timed = {}
    for slots in (1, 4):
        server = SlowServer(0.15)
        start = time.perf_counter()
        summary = sweep(spec(slots), tmp_path / f"c{slots}", backends={MODEL: server})
        timed[slots] = time.perf_counter() - start
        assert summary.done == 8 and server.peak == slots
        store = Store.open(tmp_path / f"c{slots}")
        (run,) = store.runs()
        store.close()
        assert json.loads(run["models"])[MODEL]["concurrency"] == {"slots": slots, "peak": slots}
    assert timed[4] < timed[1] / 2  # 8 calls of 0.15 s: about 1.2 s one by one, 0.3 s by 4
    one = sweep(spec(1), tmp_path / "c1", backends={MODEL: SlowServer(0)}).results()
    four = sweep(spec(4), tmp_path / "c4", backends={MODEL: SlowServer(0)}).results()
    columns = ["cell_key", "outcome", "score", "final_answer", "total_tokens"]
    assert (
        one[columns].sort_values("cell_key").values.tolist()
        == four[columns].sort_values("cell_key").values.tolist()
    )  # the same rows, whatever the order they finished in


def test_queue_time_is_recorded_apart_from_latency(tmp_path: Path) -> None:
    server = SlowServer(0.1)
    frame = sweep(spec(2), tmp_path / "q", backends={MODEL: server}).results()
    # Four samples go at once for two slots: half of them wait about one call for a slot.
    assert (frame["queue_s"] > 0.05).sum() >= 3
    assert (frame["latency_s"] < 0.1 + 0.05).all()  # a call's own time, without the wait


def test_an_agent_samples_turns_stay_in_order_under_concurrency(tmp_path: Path) -> None:
    server = SlowServer(0.01)
    frame = sweep(spec(4, ("single",)), tmp_path / "a", backends={MODEL: server}).results()
    assert len(frame) == 8
    store = Store.open(tmp_path / "a")
    steps = store.steps()
    store.close()
    for key in frame["cell_key"]:
        turns = [s.turn for s in steps if s.cell_key == key]
        assert turns == sorted(turns) and turns[0] == 1


def test_a_dead_server_cancels_the_samples_in_flight_and_keeps_the_finished(
    tmp_path: Path,
) -> None:
    server = SlowServer(0.05, fail_at=6)
    with pytest.raises(BackendUnavailable):
        sweep(spec(2), tmp_path / "d", backends={MODEL: server})
    store = Store.open(tmp_path / "d")
    kept = store.results()
    store.close()
    assert 1 <= len(kept) < 8 and all(r.outcome == "ok" for r in kept)
    healed = sweep(spec(2), tmp_path / "d", backends={MODEL: SlowServer(0)})
    assert healed.skipped == len(kept) and healed.done == 8 - len(kept)
    assert len(healed.results()) == 8  # nothing lost, nothing twice


class TickMeter:
    """A meter whose counter is advanced by the test: 1 J per tick."""

    method = "estimate"

    def __init__(self) -> None:
        self.joules = 0.0

    def start(self) -> float:
        return self.joules

    def stop(self, mark: Any) -> EnergyReading:
        return EnergyReading(self.joules - float(mark), "estimate")

    def describe(self) -> dict[str, Any]:
        return {"method": "estimate"}


def test_overlapping_calls_split_each_span_equally() -> None:
    meter = TickMeter()
    gates = {name: asyncio.Event() for name in ("a", "b")}

    class Gated(ScriptedBackend):
        async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
            await gates[messages[-1]["content"]].wait()
            self.replies = ["ok"]
            return await super().chat(messages, gen)

    metered = MeteredBackend(Gated([]), meter)

    async def scene() -> tuple[EnergyReading, EnergyReading]:
        a = asyncio.ensure_future(
            metered.chat([{"role": "user", "content": "a"}], GenerationConfig())
        )
        await asyncio.sleep(0)
        meter.joules += 2  # a alone: 2 J to a
        b = asyncio.ensure_future(
            metered.chat([{"role": "user", "content": "b"}], GenerationConfig())
        )
        await asyncio.sleep(0)
        meter.joules += 4  # a and b: 2 J each
        gates["a"].set()
        await a
        meter.joules += 3  # b alone: 3 J to b
        gates["b"].set()
        await b
        return a.result().energy, b.result().energy

    first, second = asyncio.run(scene())
    assert (first.joules, first.shared) == (4.0, 2)
    assert (second.joules, second.shared) == (5.0, 2)  # 9 J in all, none counted twice


CHILD = Path(__file__).with_name("sweep_child.py")
COLUMNS = ["cell_key", "outcome", "score", "final_answer", "total_tokens", "n_calls"]


def _table(out: Path) -> list[list[object]]:
    store = Store.open(out)
    rows, steps = store.results(), store.steps()
    store.close()
    keys = [r.cell_key for r in rows]
    assert len(keys) == len(set(keys))  # never a row twice
    for r in rows:  # never a sample without all of its steps
        assert len([s for s in steps if s.cell_key == r.cell_key]) == r.n_calls
    return sorted([getattr(r, c) for c in COLUMNS] for r in rows)


def _rows(out: Path) -> int:
    db = out / "results.sqlite"
    if not db.exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0


def test_kill_9_mid_sweep_loses_only_cells_in_flight(tmp_path: Path) -> None:
    """A concurrent sweep in another process, killed with SIGKILL after 3, 9 and 15 stored
    samples, then run to the end: the table equals an uninterrupted run's."""
    import subprocess
    import sys

    whole = tmp_path / "whole"
    subprocess.run([sys.executable, str(CHILD), str(whole)], check=True, timeout=120)
    expected = _table(whole)
    assert len(expected) == 24  # 2 datasets x 6 samples x 2 paradigms

    out = tmp_path / "killed"
    for at in (3, 9, 15):
        child = subprocess.Popen([sys.executable, str(CHILD), str(out)])
        deadline = time.monotonic() + 60
        while _rows(out) < at and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.kill()  # SIGKILL: no handler runs
        child.wait()
        assert at <= _rows(out) < 24
        _table(out)  # consistent at every stop
    subprocess.run([sys.executable, str(CHILD), str(out)], check=True, timeout=120)
    assert _table(out) == expected
    store = Store.open(out)
    statuses = [r["status"] for r in store.runs()]
    store.close()
    assert statuses == ["abandoned"] * 3 + ["complete"]


@pytest.mark.model
def test_concurrency_against_the_real_llama_server(parallel_server: str, tmp_path: Path) -> None:
    """llama.cpp's llama-server with 4 slots: 4 requests in flight, every sample answered."""
    from conftest import SMOL
    from slmscope.models.base import GenerationConfig

    spec = RunSpec(
        models=(SMOL,),
        paradigms=("base",),
        tasks=("builtin:sentiment", "builtin:headlines"),
        limit=4,
        base_url=parallel_server,
        concurrency=4,
        gen=GenerationConfig(max_tokens=24),
    )
    frame = sweep(spec, tmp_path / "c4").results()
    assert len(frame) == 8 and set(frame["outcome"]) <= {"ok", "no_final_answer"}
    assert (frame["completion_tokens"] > 0).all()
    store = Store.open(tmp_path / "c4")
    (run,) = store.runs()
    store.close()
    record = json.loads(run["models"])[SMOL]
    assert record["concurrency"] == {"slots": 4, "peak": 4}
    assert record["backend_kind"] == "openai" and record["server"]  # llama-server's own account
