"""A sweep as one library call: `sweep(spec, out)` checks the spec, loads the tasks, pulls
missing weights, runs every cell not yet in the store and returns a `SweepSummary`. The
command line, the benchmarks and notebooks all call it; what happens on the way comes to
`on_event` as typed events (the command line renders them as progress).

    from slmscope.runs import RunSpec, sweep
    summary = sweep(RunSpec(models=("smollm2-135m-instruct",), paradigms=("base",),
                            tasks=("builtin",), limit=3), "runs/try")
    summary.results()  # a DataFrame of this sweep's samples
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slmscope.models import Backend, ModelCard
from slmscope.models.base import BackendError
from slmscope.models.cache import ResponseCache
from slmscope.models.pull import pull
from slmscope.runs.events import (
    BadRowsSkipped,
    Event,
    PullProgress,
    RetryingFailed,
    RunsAbandoned,
    SampleDone,
    StaleSamples,
    SweepInterrupted,
    SweepStarted,
    ToolLeftOut,
)
from slmscope.runs.executor import RunTotals, execute, now
from slmscope.runs.plan import resolve, superseded
from slmscope.runs.records import RESULT_COLUMNS, STEP_COLUMNS, Result
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import StoreError, StoreLost
from slmscope.runs.stores import Source, open_existing, open_store

OnEvent = Callable[[Event], None]
RETRIED = {"backend_error", "timeout"}  # outcomes that say nothing of the model: run again


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did. `keys` are its cells: the store may hold other runs' samples too."""

    run_id: str
    out: Path
    source: Source  # where the results are: the run directory, or the database URL
    planned: int
    skipped: int  # already in the store when it started (resumed)
    done: int
    keys: frozenset[str]

    def results(self) -> pd.DataFrame:
        """This sweep's samples (results table rows), one per cell done so far."""
        return self._frame("results")

    def steps(self) -> pd.DataFrame:
        return self._frame("steps")

    def server_failures(self) -> tuple[int, str | None]:
        """If every sample this sweep ran ended in a backend error: how many, and the first
        error; (0, None) otherwise. Such a run measured the server, not the model."""
        mine = self.results()
        mine = mine[mine["run_id"] == self.run_id]
        failed = mine[mine["outcome"] == "backend_error"]
        if mine.empty or len(failed) < len(mine):
            return 0, None
        return len(failed), str(failed["error"].iloc[0])

    def _frame(self, table: str) -> pd.DataFrame:
        store = open_existing(self.source)
        try:
            if table == "results":
                rows = [dataclasses.asdict(r) for r in store.results() if r.cell_key in self.keys]
                return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
            rows = [dataclasses.asdict(s) for s in store.steps() if s.cell_key in self.keys]
            return pd.DataFrame(rows, columns=list(STEP_COLUMNS))
        finally:
            store.close()


def ensure_pulled(card: ModelCard, emit: OnEvent) -> None:
    """The card's weights, pulled if they are not here yet (progress as events)."""
    if not card.abilities().needs_weights or card.is_installed():
        return

    def progress(phase: str, done: int, total: int | None) -> None:
        emit(PullProgress(card.id, phase, done, total))

    emit(PullProgress(card.id, "start", 0, card.size_bytes))
    pull(card, progress=progress)


async def sweep_async(
    spec: RunSpec,
    out: str | Path,
    on_event: OnEvent | None = None,
    *,
    backends: dict[str, Backend] | None = None,
    retry_failed: bool = False,
    db: str | None = None,
    cache: bool = False,
    ray: str | None = None,
) -> SweepSummary:
    """`sweep`, for callers already inside an event loop."""
    emit: OnEvent = on_event or (lambda _event: None)
    out = Path(out)
    resolved = await resolve(spec, backends=backends)
    if resolved.bad_rows:
        emit(BadRowsSkipped(resolved.bad_rows, out))
    if resolved.tool_left_out is not None:
        emit(ToolLeftOut("python", resolved.tool_left_out))
    for ignored in resolved.ignored:
        emit(ignored)
    store = open_store(out, db)  # a store that cannot be used is refused before any pull
    totals: list[RunTotals] = []
    replies = ResponseCache() if cache else None
    cells = resolved.cells
    try:
        for card in resolved.cards.values():
            if backends is None or card.id not in backends:
                ensure_pulled(card, emit)
        abandoned = store.abandon_runs(now())
        if abandoned:
            emit(RunsAbandoned(abandoned, out))
        stale, changed, unmarked = superseded(store.results(), cells)
        if stale:
            store.mark_stale(stale)
            emit(StaleSamples(changed, unmarked, out))
        if retry_failed:
            mine = {c.key for c in cells}
            failed = [
                r.cell_key
                for r in store.results()
                if r.cell_key in mine and RETRIED & {r.outcome, r.agent_outcome}
            ]
            store.forget(failed)
            emit(RetryingFailed(len(failed)))

        def on_start(t: RunTotals) -> None:
            totals.append(t)
            emit(SweepStarted(t.run_id, out, t.planned, t.skipped))

        def on_sample(result: Result) -> None:
            t = totals[0]
            emit(SampleDone(result, t.done, t.planned - t.skipped))

        try:
            await execute(
                resolved,
                store,
                on_start=on_start,
                on_sample=on_sample,
                backends=backends,
                cache=replies,
                ray_address=ray,
            )
        except (BackendError, StoreError) as err:
            if not isinstance(err, StoreLost):
                saved = _done(totals)
                err.add_note(f"{saved} samples of this run are saved in {out}; run it again")
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            emit(SweepInterrupted(_done(totals), out))
            raise
    finally:
        store.close()
        if replies is not None:
            replies.close()
    t = totals[0]
    keys = frozenset(c.key for c in cells)
    return SweepSummary(t.run_id, out, db or out, t.planned, t.skipped, t.done, keys)


def _done(totals: list[RunTotals]) -> int:
    return totals[0].done if totals else 0


def sweep(
    spec: RunSpec,
    out: str | Path,
    on_event: OnEvent | None = None,
    *,
    backends: dict[str, Backend] | None = None,
    retry_failed: bool = False,
    db: str | None = None,
    cache: bool = False,
    ray: str | None = None,
) -> SweepSummary:
    """Run every cell of `spec` not yet stored in `out` (resuming), and say what was done;
    `retry_failed` first drops the cells that ended in a backend error or a timeout, so they
    run again. `db` (postgresql://...) stores the results in that database instead of the run
    directory's SQLite file. `cache` replays replies to requests made before (see
    models/cache.py: keyed by the model's full identity). `ray` runs the models as Ray tasks
    ("local": a Ray instance on this machine; or a cluster's address). From inside a running
    event loop (a notebook), it runs on a worker thread."""
    call = sweep_async(
        spec,
        out,
        on_event,
        backends=backends,
        retry_failed=retry_failed,
        db=db,
        cache=cache,
        ray=ray,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call)
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, call).result()
