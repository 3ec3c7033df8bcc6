"""One model's share of a run: open its backend, meter it, run its cells (concurrently where
it is served) and hand each finished sample on. The in-process executor and the Ray executor
both run models through `run_model`; only where the samples go differs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, get_args

from slmscope.errors import ConfigError
from slmscope.metering.energy import (
    UNAVAILABLE,
    EnergyMeter,
    EnergyReading,
    NvmlMeter,
    open_meter,
)
from slmscope.metering.memory import peak_rss_mb
from slmscope.models import Backend, ModelCard, ServedSource, open_backend
from slmscope.models.base import BackendInfo
from slmscope.models.cache import CachedBackend, ResponseCache
from slmscope.models.limited import LimitedBackend
from slmscope.models.metered import MeteredBackend
from slmscope.paradigms import (
    HARNESSES,
    TOOL_MODES,
    AgentLimits,
    Harness,
    Paradigm,
    ToolMode,
    get_paradigm,
)
from slmscope.paradigms.fallback import Fallback
from slmscope.paradigms.multi_agent import load_roster
from slmscope.paradigms.trace import Trace
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.spec import Cell, RunSpec, harnesses_of
from slmscope.tasks.scoring import score

Emit = Callable[[Result, list[StepRecord]], None]  # a finished sample, with its steps
OnRecord = Callable[[dict[str, Any]], None]  # the model's record, as it grows


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def meter_for(spec: RunSpec, info: BackendInfo) -> EnergyMeter:
    """The energy meter for a model's calls: counters where they can see the work, else the
    estimate for an in-process backend, else none (a server on another machine)."""
    return open_meter(
        spec.energy,
        in_process=info.in_process,
        same_machine=info.same_machine,
        core_w=spec.core_w,
        idle_w=spec.idle_w,
    )


def memory_after(meter: EnergyMeter) -> dict[str, Any]:
    """Memory once a model's calls are done: the process's peak RSS (the embedded backend runs
    in it) and, where NVML meters the GPUs, their memory in use."""
    found: dict[str, Any] = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if isinstance(meter, NvmlMeter):
        found["gpu_memory_mb"] = [round(mb, 1) for mb in meter.memory_used_mb()]
    return found


def model_record(
    card: ModelCard, backend: str, info: BackendInfo, meter: EnergyMeter
) -> dict[str, Any]:
    """What identifies the model in the run record: the catalog's card, the backend (its name
    and kind) and what it says of itself (file hash or server, versions, memory), and the
    energy meter used."""
    return {
        "backend": backend,
        "backend_kind": info.kind,
        "quantization": card.quantization,
        "source": card.source.kind,
        "params_b": card.params_b,
        "energy": meter.describe(),
        **info.identity,
        **info.memory,
    }


def result_of(run_id: str, cell: Cell, trace: Trace, wall_s: float) -> Result:
    """The sample's Result: its score joined with the summed cost of its steps. Its latency is
    its wall time less the time its calls waited for a free slot (`queue_s`)."""
    task = cell.task
    calls = [s.usage for s in trace.steps if s.usage is not None]
    prompt = sum(u.prompt_tokens for u in calls)
    completion = sum(u.completion_tokens for u in calls)
    readings = [s.energy for s in trace.steps if s.energy is not None]
    try:
        energy = EnergyReading.total(readings) if readings else UNAVAILABLE
    except ValueError:  # calls metered by different methods cannot be added up
        energy = UNAVAILABLE
    queued = sum(s.timings.queue_s for s in trace.steps if s.timings)
    # A replayed call took no time now; the sample keeps the time that call took when made.
    replayed = sum(s.timings.latency_s for s in trace.steps if s.timings and s.cache_hit)
    return Result(
        run_id=run_id,
        cell_key=cell.key,
        model=cell.model,
        paradigm=cell.paradigm,
        harness=cell.harness,
        dataset=task.dataset,
        task_type=task.task_type,
        sample_id=task.id,
        content=task.fingerprint(),
        outcome=trace.outcome,
        agent_outcome=trace.agent_outcome,
        score=score(task, trace.final_answer),
        final_answer=trace.final_answer,
        gold=task.gold,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=sum(u.cached_tokens for u in calls),
        total_tokens=prompt + completion,
        n_calls=len(trace.steps),
        latency_s=max(0.0, wall_s - queued) + replayed,
        cache_hits=sum(s.cache_hit for s in trace.steps),
        queue_s=queued,
        energy_shared=energy.shared,
        ttft_s=next((s.timings.ttft_s for s in trace.steps if s.timings), None),
        energy_j=energy.joules,
        energy_method=energy.method,
        peak_rss_mb=round(peak_rss_mb(), 1),
        usage_source="counted" if any(u.source == "counted" for u in calls) else "backend",
        error=trace.error,
        created_at=now(),
    )


def steps_of(run_id: str, cell: Cell, trace: Trace) -> list[StepRecord]:
    return [
        StepRecord(
            run_id=run_id,
            cell_key=cell.key,
            model=cell.model,
            paradigm=cell.paradigm,
            harness=cell.harness,
            dataset=cell.task.dataset,
            sample_id=cell.task.id,
            agent=s.agent,
            turn=s.turn,
            repair=s.repair,
            prompt_tokens=s.usage.prompt_tokens if s.usage else None,
            completion_tokens=s.usage.completion_tokens if s.usage else None,
            cached_tokens=s.usage.cached_tokens if s.usage else None,
            latency_s=s.timings.latency_s if s.timings else None,
            ttft_s=s.timings.ttft_s if s.timings else None,
            decode_tps=s.timings.decode_tps if s.timings else None,
            tool=s.tool,
            tool_input=s.tool_input,
            observation=s.observation,
            error=s.error,
            messages=json.dumps(list(s.messages)),
            output=s.output,
            usage_source=s.usage.source if s.usage else None,
            energy_j=s.energy.joules if s.energy else None,
            energy_method=s.energy.method if s.energy else None,
            queue_s=s.timings.queue_s if s.timings else None,
            cache_hit=s.cache_hit,
        )
        for s in trace.steps
    ]


def harness_of(name: str) -> Harness:
    """A harness name, checked (`none`, the base paradigm's, maps to the default)."""
    if name == "none":
        return "repair"
    for harness in get_args(Harness):
        if name == harness:
            return cast(Harness, harness)
    raise ConfigError(f"unknown harness {name!r}; available: {', '.join(HARNESSES)}")


def tool_mode_of(spec: RunSpec) -> ToolMode:
    """The spec's tool mode, checked (a spec is plain data: it may come from a file)."""
    if spec.tool_mode not in TOOL_MODES:
        raise ConfigError(
            f"unknown tool mode {spec.tool_mode!r}; available: {', '.join(TOOL_MODES)}"
        )
    return "native" if spec.tool_mode == "native" else "tags"


async def run_cells(
    cells: Sequence[Cell], one: Callable[[Cell], Awaitable[None]], workers: int
) -> None:
    """Each cell once, `workers` at a time (a cell's own turns stay in order inside `one`). The
    first failure cancels the cells still running (nothing of theirs is written) and is
    raised as itself."""
    todo = iter(cells)

    async def worker() -> None:
        for cell in todo:  # one shared iterator: each cell is taken by one worker
            await one(cell)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(workers, len(cells)))]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for w in tasks:
            w.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for w in pending:
        w.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for w in done:
        error = w.exception()
        if error is not None:
            raise error


def paradigms_for(spec: RunSpec) -> dict[tuple[str, str], Paradigm]:
    """One instance per paradigm and harness: agents keep their knowledge index across
    samples."""
    limits = AgentLimits(
        max_turns=spec.max_turns,
        max_tokens_per_turn=spec.gen.max_tokens,
        token_budget=spec.token_budget,
        context_window=spec.n_ctx,
    )
    roster = load_roster(Path(spec.roster)) if spec.roster else ()
    return {
        (name, harness): get_paradigm(
            name, limits=limits, roster=roster, mode=tool_mode_of(spec), harness=harness_of(harness)
        )
        for name in spec.paradigms
        for harness in harnesses_of(spec, name)
    }


class Reuse:
    """Traces of this sweep's cells, so that `single+fallback` reuses the `single` cell (and
    the `base` cell) of the same sample instead of running them again."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        # Only traces a later fallback cell will read are kept (cells are taken in order, so
        # one that comes earlier is running or done when the fallback waits for it).
        where = {_key(c): n for n, c in enumerate(cells)}
        self.needed: set[tuple[str, str, str, str]] = set()
        for n, cell in enumerate(cells):
            if cell.paradigm.endswith("+fallback"):
                agent, base = _sources(cell)
                for key in (agent, base):
                    if where.get(key, n) < n:
                        self.needed.add(key)
        self.traces: dict[tuple[str, str, str, str], asyncio.Future[tuple[Trace, float]]] = {}

    def _future(self, key: tuple[str, str, str, str]) -> asyncio.Future[tuple[Trace, float]]:
        return self.traces.setdefault(key, asyncio.get_running_loop().create_future())

    def finished(self, cell: Cell, trace: Trace, wall: float) -> None:
        if _key(cell) not in self.needed:
            return
        future = self._future(_key(cell))
        if not future.done():
            future.set_result((trace, wall))

    async def for_fallback(
        self, cell: Cell, paradigm: Paradigm
    ) -> tuple[Trace, Trace | None, float] | None:
        """(agent trace, base trace or None, their time) when this sweep runs the agent cell
        of this fallback cell; None otherwise (the fallback then runs on its own)."""
        if not isinstance(paradigm, Fallback):
            return None
        agent, base = _sources(cell)
        if agent not in self.needed:
            return None
        first, spent = await self._future(agent)
        if first.outcome == "ok" or base not in self.needed:
            return first, None, spent
        second, more = await self._future(base)
        return first, second, spent + more


def _key(cell: Cell) -> tuple[str, str, str, str]:
    return (cell.paradigm, cell.harness, cell.task.dataset, cell.task.id)


def _sources(cell: Cell) -> tuple[tuple[str, str, str, str], tuple[str, str, str, str]]:
    """The agent cell and the base cell a fallback cell can reuse."""
    sample = (cell.task.dataset, cell.task.id)
    return (cell.paradigm.removesuffix("+fallback"), cell.harness, *sample), (
        "base",
        "none",
        *sample,
    )


def slots_of(spec: RunSpec, card: ModelCard) -> int:
    """Calls in flight at once: a served model's concurrency; the embedded backend's one."""
    return spec.concurrency if isinstance(card.source, ServedSource) else 1


async def run_model(
    spec: RunSpec,
    card: ModelCard,
    cells: Sequence[Cell],
    run_id: str,
    *,
    emit: Emit,
    on_record: OnRecord,
    backend: Backend | None = None,
    cache: ResponseCache | None = None,
) -> None:
    """Run one model's cells; each finished sample goes to `emit`, the model's record (what
    identifies it, its meter, memory, concurrency, cache use) to `on_record` as it grows."""
    paradigms = paradigms_for(spec)
    backend = backend or open_backend(
        card,
        n_ctx=spec.n_ctx,
        n_threads=spec.n_threads,
        stream=spec.stream,
        timeout_s=spec.request_timeout_s,
        retries=spec.retries,
    )
    try:
        info = await backend.describe()
        meter = meter_for(spec, info)
        record = model_record(card, backend.name, info, meter)
        on_record(record)
        slots = slots_of(spec, card)
        metered: Backend = MeteredBackend(backend, meter)
        cached = CachedBackend(metered, cache, info, meter.method) if cache else None
        limited = LimitedBackend(cached or metered, slots)

        done = Reuse(cells)

        async def one(cell: Cell) -> None:
            paradigm = paradigms[cell.paradigm, cell.harness]
            start = time.perf_counter()
            reused = await done.for_fallback(cell, paradigm)
            if reused is None:
                trace = await paradigm.solve(cell.task, limited, spec.gen)
                wall = time.perf_counter() - start
            else:  # the agent's (and base's) own cells of this sweep: their time, not a wait
                first, base, spent = reused
                assert isinstance(paradigm, Fallback)
                start = time.perf_counter()
                trace = await paradigm.finish(first, cell.task, limited, spec.gen, base)
                wall = spent + (
                    0.0 if base or first.outcome == "ok" else time.perf_counter() - start
                )
            done.finished(cell, trace, wall)
            emit(result_of(run_id, cell, trace, wall), steps_of(run_id, cell, trace))

        try:
            # Twice as many samples as slots: while some run tools, the slots stay busy.
            await run_cells(cells, one, 2 * slots if slots > 1 else 1)
        finally:
            record["concurrency"] = {"slots": slots, "peak": limited.peak}
            if cached is not None:
                record["cache"] = {"hits": cached.hits, "misses": cached.misses}
            record.update(memory_after(meter))
            on_record(record)
    finally:
        await backend.aclose()
