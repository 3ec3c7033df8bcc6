"""The in-process executor: runs a plan's cells, scores them, writes each sample as it finishes.

Cells already in the run directory's store are skipped, so re-running the same command resumes
an interrupted sweep. A backend that cannot be reached stops the run (nothing is recorded for
the sample it was on); every other failure is recorded as that sample's outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast, get_args

from slmscope import __version__
from slmscope.errors import ConfigError
from slmscope.metering.energy import (
    UNAVAILABLE,
    EnergyMeter,
    EnergyReading,
    NvmlMeter,
    open_meter,
)
from slmscope.metering.machine import fingerprint
from slmscope.metering.memory import peak_rss_mb
from slmscope.models import Backend, ModelCard, ServedSource, open_backend
from slmscope.models.base import (
    NATIVE_TOOLS_HINT,
    BackendInfo,
    Constraint,
    GenerationConfig,
    ToolsUnsupported,
)
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
from slmscope.paradigms.multi_agent import load_roster
from slmscope.paradigms.trace import Trace
from slmscope.runs.records import Result, StepRecord
from slmscope.runs.spec import Cell, RunSpec, harnesses_of, plan
from slmscope.runs.store import SqlStore
from slmscope.tasks.loaders.dataset import BadRow
from slmscope.tasks.record import Task
from slmscope.tasks.scoring import score
from slmscope.tools.isolation import availability


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def model_record(card: ModelCard, info: BackendInfo, meter: EnergyMeter) -> dict[str, Any]:
    """What identifies the model in the run record: the catalog's card, what the backend says
    of itself (file hash or server, versions, memory), and the energy meter used."""
    return {
        "backend": info.kind,
        "quantization": card.quantization,
        "source": card.source.kind,
        "params_b": card.params_b,
        "energy": meter.describe(),
        **info.identity,
        **info.memory,
    }


@dataclass
class RunTotals:
    run_id: str
    planned: int
    skipped: int
    done: int = 0


def result_of(run_id: str, cell: Cell, trace: Trace, wall_s: float) -> Result:
    """The sample's Result: its score joined with the summed cost of its steps. Its latency is
    its wall time less the time its calls waited for a free slot (`queue_s`)."""
    task = cell.task
    calls = [s.usage for s in trace.steps if s.usage is not None]
    prompt = sum(u.prompt_tokens for u in calls)
    completion = sum(u.completion_tokens for u in calls)
    readings = [s.energy for s in trace.steps if s.energy is not None]
    energy = EnergyReading.total(readings) if readings else UNAVAILABLE
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


GRAMMAR_PROBE = GenerationConfig(max_tokens=4, constraint=Constraint("probe", 'root ::= "ok"'))


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


def check_tool_mode(spec: RunSpec, cards: dict[str, ModelCard]) -> None:
    """Native tool calling needs a server that has it: refuse embedded models before running."""
    if tool_mode_of(spec) != "native":
        return
    embedded = [m for m, card in cards.items() if not isinstance(card.source, ServedSource)]
    if embedded:
        raise ToolsUnsupported(NATIVE_TOOLS_HINT, where=", ".join(embedded))


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


OnStart = Callable[[RunTotals], None]
OnSample = Callable[[Result], None]


async def execute(
    spec: RunSpec,
    cards: dict[str, ModelCard],
    tasks: list[Task],
    store: SqlStore,
    *,
    on_start: OnStart | None = None,
    on_sample: OnSample | None = None,
    backends: dict[str, Backend] | None = None,
    bad_rows: Sequence[BadRow] = (),
    cache: ResponseCache | None = None,
) -> RunTotals:
    """Run every cell of the spec not yet in the store. `backends` overrides open_backend per model
    (tests pass scripted ones)."""
    # Everything that can be refused is built before the run is recorded.
    limits = AgentLimits(
        max_turns=spec.max_turns,
        max_tokens_per_turn=spec.gen.max_tokens,
        token_budget=spec.token_budget,
        context_window=spec.n_ctx,
    )
    # One instance per paradigm: agents keep their knowledge index across samples.
    roster = load_roster(Path(spec.roster)) if spec.roster else ()
    paradigms: dict[tuple[str, str], Paradigm] = {
        (name, harness): get_paradigm(
            name, limits=limits, roster=roster, mode=tool_mode_of(spec), harness=harness_of(harness)
        )
        for name in spec.paradigms
        for harness in harnesses_of(spec, name)
    }
    grammars = tool_mode_of(spec) == "tags" and set(spec.paradigms) - {"base"}
    if "constrained" in spec.harnesses and grammars:
        for model_id, card in cards.items():  # a server that ignores grammars is refused now
            if isinstance(card.source, ServedSource):
                given = (backends or {}).get(model_id)
                served = given or open_backend(card, stream=spec.stream)
                try:
                    await served.chat([{"role": "user", "content": "Say ok."}], GRAMMAR_PROBE)
                finally:
                    if given is None:
                        await served.aclose()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    cells = plan(spec, tasks)
    done = store.done_keys()
    todo = [c for c in cells if c.key not in done]
    totals = RunTotals(run_id=run_id, planned=len(cells), skipped=len(cells) - len(todo))
    store.start_run(
        run_id, now(), spec=spec.to_dict(), versions=versions(), machine=fingerprint(), models={}
    )
    store.write_bad_rows(run_id, [dataclasses.asdict(b) for b in bad_rows])
    if on_start:
        on_start(totals)
    models: dict[str, Any] = {}
    status = "failed"
    try:
        for model_id in spec.models:
            mine = [c for c in todo if c.model == model_id]
            if not mine:
                continue
            card = cards[model_id]
            backend = (backends or {}).get(model_id) or open_backend(
                card, n_ctx=spec.n_ctx, n_threads=spec.n_threads, stream=spec.stream
            )
            info = await backend.describe()
            meter = meter_for(spec, info)
            models[model_id] = model_record(card, info, meter)
            slots = spec.concurrency if isinstance(card.source, ServedSource) else 1
            metered: Backend = MeteredBackend(backend, meter)
            cached = CachedBackend(metered, cache, info) if cache else None
            limited = LimitedBackend(cached or metered, slots)
            store.update_run_models(run_id, models)

            async def one(cell: Cell, limited: Backend = limited) -> None:
                paradigm = paradigms[cell.paradigm, cell.harness]
                start = time.perf_counter()
                trace = await paradigm.solve(cell.task, limited, spec.gen)
                row = result_of(run_id, cell, trace, time.perf_counter() - start)
                store.write_sample(row, steps_of(run_id, cell, trace))
                totals.done += 1
                if on_sample:
                    on_sample(row)

            try:
                # Twice as many samples as slots: while some run tools, the slots stay busy.
                await run_cells(mine, one, 2 * slots if slots > 1 else 1)
                models[model_id]["concurrency"] = {"slots": slots, "peak": limited.peak}
                if cached is not None:
                    models[model_id]["cache"] = {"hits": cached.hits, "misses": cached.misses}
            finally:
                await backend.aclose()
                models[model_id].update(memory_after(meter))
                store.update_run_models(run_id, models)
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
