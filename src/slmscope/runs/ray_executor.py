"""The Ray executor (`--executor ray`, extra `slmscope[ray]`): each model's cells become one Ray
task with its own resource request, so a cluster runs several models at once; each task streams
its finished samples back as it goes (a Ray generator), and the driver writes them to the one
store as they arrive. Inside a task the model runs exactly as in process (`run_model`).

`address` "local" starts a Ray instance on this machine (and stops it after); anything else is
passed to `ray.init` (`auto`, or `ray://host:10001` for a cluster started with `ray start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

from slmscope.errors import ConfigError
from slmscope.models import ModelCard
from slmscope.runs.model_run import Emit, run_model
from slmscope.runs.plan import Cell, ResolvedSweep
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.spec import RunSpec

Item = tuple[str, Any]  # ("sample", (result, steps)) or ("record", record)


def _model_task(sweep: ResolvedSweep, model: str, cells: list[Cell], run_id: str) -> Iterator[Item]:
    """Runs in a Ray worker: the model's cells, each finished sample yielded as it comes."""
    out: queue.Queue[tuple[str, Any]] = queue.Queue()

    def emit(result: Result, steps: list[StepRecord]) -> None:
        out.put(("sample", (result, steps)))

    def record(value: dict[str, Any]) -> None:
        out.put(("record", dict(value)))

    def work() -> None:
        try:
            card = sweep.cards[model]
            asyncio.run(run_model(sweep, card, cells, run_id, emit=emit, on_record=record))
            out.put(("done", None))
        except BaseException as err:  # raised again in the generator, so Ray sends it back
            out.put(("error", err))

    threading.Thread(target=work, daemon=True).start()
    while True:
        kind, value = out.get()
        if kind == "done":
            return
        if kind == "error":
            raise value
        yield kind, value


def resources(spec: RunSpec, card: ModelCard) -> dict[str, float]:
    """What a model's task asks of the cluster: the embedded backend its threads; a served
    model one CPU for its client (the server's GPUs are the server's)."""
    if not card.abilities().in_process:
        return {"num_cpus": 1}
    return {"num_cpus": float(spec.n_threads or os.cpu_count() or 1), "num_gpus": 0}


async def run_on_ray(
    sweep: ResolvedSweep,
    by_model: dict[str, list[Cell]],
    run_id: str,
    emit: Emit,
    on_record: Callable[[str, dict[str, Any]], None],
    address: str,
) -> None:
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--executor ray needs Ray: pip install 'slmscope[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        local = address == "local"
        ray.init(
            address=None if local else address,
            num_cpus=os.cpu_count() if local else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    task = ray.remote(_model_task)
    streams = {
        task.options(**resources(sweep.spec, sweep.cards[m])).remote(sweep, m, cells, run_id): m
        for m, cells in by_model.items()
    }
    arrived: asyncio.Queue[tuple[str, Item | BaseException | None]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def send(model: str, item: Item | BaseException | None) -> None:
        loop.call_soon_threadsafe(arrived.put_nowait, (model, item))

    def drain() -> None:
        """Driver side: take each model's items as they come (off the event loop). Whatever
        happens, every stream ends with a marker or an error, so the driver never waits on."""
        pending: list[Any] = list(streams)
        try:
            _drain(pending)
        except Exception as err:  # a worker that died, an object lost: the run fails with it
            for stream in pending:
                send(streams[stream], err)

    def _drain(pending: list[Any]) -> None:
        while pending:
            ready, rest = cast(tuple[list[Any], list[Any]], ray.wait(pending, num_returns=1))
            pending = rest
            for stream in ready:
                model = streams[stream]
                try:
                    item = cast(Item, ray.get(next(stream)))
                except StopIteration:
                    send(model, None)
                    continue
                except ray.exceptions.RayTaskError as err:
                    send(model, err.cause if isinstance(err.cause, BaseException) else err)
                    continue
                except Exception as err:  # the worker crashed, ran out of memory...
                    send(model, err)
                    continue
                send(model, item)
                pending.append(stream)

    drainer = loop.run_in_executor(None, drain)
    open_streams = len(streams)
    try:
        while open_streams:
            model, item = await arrived.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            elif item[0] == "record":
                on_record(model, item[1])
            else:
                result, steps = item[1]
                emit(result, steps)
        await drainer
    finally:
        for stream in streams:  # a task still running stops, its worker process with it
            with contextlib.suppress(Exception):  # a finished task cannot be cancelled: fine
                ray.cancel(stream, force=True)
        if started_here:
            ray.shutdown()
