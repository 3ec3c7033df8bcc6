"""The in-process executor: runs a plan's cells, scores them, writes each sample as it finishes.

Cells already in the run directory's store are skipped, so re-running the same command resumes
an interrupted sweep. A backend that cannot be reached stops the run (nothing is recorded for
the sample it was on); every other failure is recorded as that sample's outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import platform
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from slmscope import __version__
from slmscope.errors import ConfigError
from slmscope.metering.machine import fingerprint
from slmscope.models import Backend
from slmscope.models.cache import ResponseCache
from slmscope.runs.model_run import now, run_model
from slmscope.runs.plan import ResolvedSweep
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.store import SqlStore
from slmscope.tools.isolation import availability

__all__ = ["execute", "now"]


def versions() -> dict[str, str]:
    found = {"slmscope": __version__, "python": platform.python_version()}
    for dist in ("llama-cpp-python", "httpx"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    sandboxed, detail = availability()
    found["python_tool"] = detail if sandboxed else f"unavailable: {detail}"
    return found


@dataclass
class RunTotals:
    run_id: str
    planned: int
    skipped: int
    done: int = 0


OnStart = Callable[[RunTotals], None]
OnSample = Callable[[Result], None]


async def execute(
    sweep: ResolvedSweep,
    store: SqlStore,
    *,
    on_start: OnStart | None = None,
    on_sample: OnSample | None = None,
    backends: dict[str, Backend] | None = None,
    cache: ResponseCache | None = None,
    ray_address: str | None = None,
) -> RunTotals:
    """Run every cell of the resolved sweep not yet in the store, writing each sample as it
    finishes. `backends` overrides open_backend per model (tests pass scripted ones);
    `ray_address` ("local" for a Ray instance on this machine) runs the models as Ray tasks."""
    spec = sweep.spec
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    done = store.done_keys()
    todo = [c for c in sweep.cells if c.key not in done]
    totals = RunTotals(run_id, planned=len(sweep.cells), skipped=len(sweep.cells) - len(todo))
    here = {**fingerprint(), "host": socket.gethostname(), "pid": os.getpid()}
    store.start_run(
        run_id, now(), spec=spec.to_dict(), versions=versions(), machine=here, models={}
    )
    store.write_bad_rows(run_id, [dataclasses.asdict(b) for b in sweep.bad_rows])
    if on_start:
        on_start(totals)
    models: dict[str, Any] = {}
    by_model = {m: [c for c in todo if c.model == m] for m in spec.models}
    by_model = {m: mine for m, mine in by_model.items() if mine}

    def emit(result: Result, steps: list[StepRecord]) -> None:
        if not store.write_sample(result, steps):
            return  # another writer stored this cell meanwhile (a shared database)
        totals.done += 1
        if on_sample:
            on_sample(result)

    def on_record(model_id: str, record: dict[str, Any]) -> None:
        models[model_id] = record
        store.update_run_models(run_id, models)

    status = "failed"
    try:
        if ray_address is not None:
            from slmscope.runs.ray_executor import run_on_ray

            if cache is not None:
                raise ConfigError("the response cache runs in process: drop --cache with Ray")

            await run_on_ray(sweep, by_model, run_id, emit, on_record, ray_address)
        for model_id, mine in ({} if ray_address is not None else by_model).items():
            await run_model(
                sweep,
                sweep.cards[model_id],
                mine,
                run_id,
                emit=emit,
                on_record=functools.partial(on_record, model_id),
                backend=(backends or {}).get(model_id),
                cache=cache,
            )
        status = "complete"
    except BaseException as err:
        status = (
            "interrupted"
            if isinstance(err, KeyboardInterrupt | asyncio.CancelledError)
            else "failed"
        )
        raise
    finally:
        store.finish_run(run_id, now(), status)
    return totals
