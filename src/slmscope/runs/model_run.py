"""One model's share of a run: open its backend, meter it, run its cells (concurrently where
it is served) and hand each finished sample on. The in-process executor and the Ray executor
both run models through `run_model`; only where the samples go differs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from slmscope.metering.energy import EnergyMeter, NvmlMeter, open_meter
from slmscope.metering.memory import peak_rss_mb
from slmscope.models import Backend, ModelCard, open_backend
from slmscope.models.base import BackendInfo
from slmscope.models.cache import ResponseCache
from slmscope.models.stack import build_stack
from slmscope.paradigms import Trace, acts_of
from slmscope.runs.plan import Arm, Cell, ResolvedSweep
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.spec import RunSpec
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


class Where(TypedDict):
    run_id: str
    cell_key: str
    model: str
    paradigm: str
    harness: str
    dataset: str
    sample_id: str


@dataclass(frozen=True)
class Named:
    """What names a sample's records: its run, cell, model, arm and problem."""

    run_id: str
    key: str
    model: str
    paradigm: str
    harness: str
    dataset: str
    task_type: str
    sample_id: str

    def where(self) -> Where:
        """The fields a Result and its StepRecords share."""
        return {
            "run_id": self.run_id,
            "cell_key": self.key,
            "model": self.model,
            "paradigm": self.paradigm,
            "harness": self.harness,
            "dataset": self.dataset,
            "sample_id": self.sample_id,
        }

    @classmethod
    def of(cls, run_id: str, cell: Cell) -> Named:
        t = cell.task
        return cls(
            run_id, cell.key, cell.model, cell.paradigm, cell.harness, t.dataset, t.task_type, t.id
        )


def result_of(run_id: str, cell: Cell, trace: Trace, wall_s: float) -> Result:
    """The sample's Result: its score joined with its trace's cost."""
    task = cell.task
    return record_of(
        Named.of(run_id, cell),
        trace,
        wall_s,
        score=score(task, trace.final_answer),
        gold=task.gold,
        content=task.fingerprint(),
    )


def record_of(
    named: Named,
    trace: Trace,
    wall_s: float,
    *,
    score: float | None,
    gold: str,
    content: str | None,
) -> Result:
    """A sample's Result (a served request's has no score). Its latency is its wall time less
    the time its calls waited for a free slot (`queue_s`); a replayed call took no time now,
    so the sample keeps the time that call took when made."""
    cost, acts = trace.cost(), acts_of(trace)
    return Result(
        **named.where(),
        task_type=named.task_type,
        content=content,
        outcome=trace.outcome,
        agent_outcome=trace.agent_outcome,
        score=score,
        final_answer=trace.final_answer,
        gold=gold,
        prompt_tokens=cost.prompt_tokens,
        completion_tokens=cost.completion_tokens,
        cached_tokens=cost.cached_tokens,
        total_tokens=cost.total_tokens,
        n_calls=cost.calls,
        latency_s=max(0.0, wall_s - cost.queue_s) + cost.replayed_s,
        cache_hits=cost.cache_hits,
        queue_s=cost.queue_s,
        energy_shared=cost.energy.shared,
        ttft_s=cost.ttft_s,
        energy_j=cost.energy.joules,
        energy_method=cost.energy.method,
        peak_rss_mb=round(peak_rss_mb(), 1),
        usage_source="counted" if cost.counted else "backend",
        error=trace.error,
        created_at=now(),
        tools_offered=acts.tools_offered,
        tool_calls=acts.tool_calls,
        tool_errors=acts.tool_errors,
        handoffs=acts.handoffs,
        tools_used=acts.tools_used(),
        acted=acts.acted,
        observed=acts.observed,
        copies=acts.copies,
        cut_turns=acts.cut_turns,
        cut_actions=acts.cut_actions,
        repeated_cuts=acts.repeated_cuts,
        closed_turns=acts.closed_turns,
    )


def steps_of(named: Named, trace: Trace) -> list[StepRecord]:
    return [
        StepRecord(
            **named.where(),
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
            handoff=s.handoff,
            copied=s.copied,
            cut=s.cut,
        )
        for s in trace.steps
    ]


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


Sample = tuple[Arm, str, str]  # (arm, dataset, sample id)


class Reuse:
    """Traces of this sweep's cells, so that a composite arm (`single+fallback`) reuses the
    cells of its parts (`single`, `base`) on the same sample instead of running them again."""

    def __init__(self, sweep: ResolvedSweep, cells: Sequence[Cell]) -> None:
        # Only traces a later composite cell will read are kept (cells are taken in order, so
        # one that comes earlier is running or done when the composite waits for it).
        where = {_sample(c.arm, c): n for n, c in enumerate(cells)}
        self.sweep = sweep
        self.needed: set[Sample] = set()
        for n, cell in enumerate(cells):
            for part in sweep.paradigms[cell.arm].parts:
                arm = sweep.part_arm(cell, part)
                if arm is not None and where.get(_sample(arm, cell), n) < n:
                    self.needed.add(_sample(arm, cell))
        self.traces: dict[Sample, asyncio.Future[tuple[Trace, float]]] = {}

    def _future(self, key: Sample) -> asyncio.Future[tuple[Trace, float]]:
        return self.traces.setdefault(key, asyncio.get_running_loop().create_future())

    def finished(self, cell: Cell, trace: Trace, wall: float) -> None:
        key = _sample(cell.arm, cell)
        if key in self.needed and not self._future(key).done():
            self._future(key).set_result((trace, wall))

    async def get(self, cell: Cell, part: str) -> tuple[Trace, float] | None:
        """The trace (and its time) of `part` on this cell's sample, when this sweep runs it
        before this cell; None otherwise (the composite then runs the part itself)."""
        arm = self.sweep.part_arm(cell, part)
        if arm is None or _sample(arm, cell) not in self.needed:
            return None
        return await self._future(_sample(arm, cell))


def _sample(arm: Arm, cell: Cell) -> Sample:
    return arm, cell.task.dataset, cell.task.id


async def run_model(
    sweep: ResolvedSweep,
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
    spec = sweep.spec
    backend = backend or open_backend(
        card,
        n_ctx=spec.n_ctx,
        n_threads=spec.n_threads,
        stream=spec.stream,
        timeout_s=spec.request_timeout_s,
        retries=spec.retries,
        kv_states_mb=spec.kv_states_mb,
    )
    try:
        info = await backend.describe()
        meter = meter_for(spec, info)
        record = model_record(card, backend.name, info, meter)
        on_record(record)
        stack = build_stack(backend, info, meter, slots=spec.concurrency, cache=cache)
        done = Reuse(sweep, cells)

        async def one(cell: Cell) -> None:
            paradigm = sweep.paradigms[cell.arm]
            waited, reused = 0.0, 0.0

            async def given(part: str) -> Trace | None:
                nonlocal waited, reused
                asked = time.perf_counter()
                found = await done.get(cell, part)
                waited += time.perf_counter() - asked
                if found is None:
                    return None
                reused += found[1]
                return found[0]

            start = time.perf_counter()
            problem = cell.task.problem
            trace = await paradigm.solve(problem, stack.backend, spec.gen, given=given)
            # Its own time, plus the time its reused parts took when they ran (not the wait).
            wall = time.perf_counter() - start - waited + reused
            done.finished(cell, trace, wall)
            emit(result_of(run_id, cell, trace, wall), steps_of(Named.of(run_id, cell), trace))

        slots = stack.limited.slots
        try:
            # Twice as many samples as slots: while some run tools, the slots stay busy.
            await run_cells(cells, one, 2 * slots if slots > 1 else 1)
        finally:
            record.update(stack.counters())
            if info.in_process:  # its saved KV states, as they ended (a server has none here)
                record.update((await backend.describe()).memory)
            record.update(memory_after(meter))
            on_record(record)
    finally:
        await backend.aclose()
