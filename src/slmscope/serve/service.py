"""One served configuration: a model behind its backend stack, the arms it answers with (one
configured paradigm, or those a router may choose), and how one request is answered.

The service knows nothing of HTTP (app.py): it turns a request into a Problem, chooses the
arm, runs it under the request's budgets (tokens over all calls, wall time) and returns the
trace with what it cost and how it was chosen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmscope.metering.energy import open_meter
from slmscope.models import Backend, open_backend
from slmscope.models.base import GenerationConfig
from slmscope.models.catalog import resolve
from slmscope.models.limited import BudgetedBackend
from slmscope.models.stack import Stack, build_stack
from slmscope.paradigms import (
    DEFAULT_HARNESS,
    AgentLimits,
    OnStep,
    Paradigm,
    Trace,
    acts_of,
    harness_label,
    serving_arms,
    solve,
)
from slmscope.paradigms.router import Router, load_router
from slmscope.paradigms.trace import Step
from slmscope.serve.protocol import ChatRequest
from slmscope.tasks.record import Problem
from slmscope.tools.isolation import availability


@dataclass(frozen=True)
class ServeConfig:
    """What `slmscope serve` is started with (see its --help)."""

    model: str
    paradigm: str = "single+fallback"
    harness: str = DEFAULT_HARNESS
    router: Path | None = None
    base_url: str | None = None
    upstream_key: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    slots: int = 1  # calls at once to a backend with parallel slots (llama-server -np, vLLM)
    max_running: int = 4  # requests being answered at once
    max_waiting: int = 32  # requests queued beyond those; more get a 429
    turn_tokens: int = 256  # tokens a model call may generate
    request_tokens: int = 16_000  # prompt and completion tokens over all calls of a request
    request_seconds: float = 300.0  # a request's wall time, queue not counted
    max_body_bytes: int = 1_000_000
    energy: str = "auto"
    api_keys: tuple[str, ...] = ()
    record: str | None = None  # a run folder or a postgresql:// URL

    def public(self) -> dict[str, Any]:
        """The settings as a recorded run's spec holds them (keys left out)."""
        body = dataclasses.asdict(self)
        body.pop("api_keys")
        body.pop("upstream_key")
        body["router"] = str(self.router) if self.router else None
        return body


@dataclass(frozen=True)
class Served:
    """A request's answer: the trace, the arm that made it, and how it was chosen."""

    request_id: str
    problem: Problem
    trace: Trace
    arm: str
    paradigm: Paradigm
    routed: bool  # the router chose the arm (else it is the configured one)
    wall_s: float
    first_token_at: float | None  # time.perf_counter() of the first token of its first call
    cut: bool = False  # its last model call was cut by its token limit

    @property
    def fallback_taken(self) -> bool:
        t = self.trace
        return t.agent_outcome is not None and t.agent_outcome != "ok"

    def extension(self) -> dict[str, Any]:
        """The response's `slmscope` field."""
        cost = self.trace.cost()
        acts = acts_of(self.trace)
        return {
            "arm": self.arm,
            "paradigm": self.paradigm.name,
            "harness": harness_label(self.paradigm),
            "routed": self.routed,
            "outcome": self.trace.outcome,
            "agent_outcome": self.trace.agent_outcome,
            "fallback_taken": self.fallback_taken,
            "error": self.trace.error,
            "calls": cost.calls,
            "tool_calls": acts.tool_calls,
            "handoffs": acts.handoffs,
            "cost": {
                "prompt_tokens": cost.prompt_tokens,
                "completion_tokens": cost.completion_tokens,
                "cached_tokens": cost.cached_tokens,
                "latency_s": round(self.wall_s, 4),
                "energy_j": cost.energy.joules,
                "energy_method": cost.energy.method,
            },
        }


@dataclass
class Service:
    config: ServeConfig
    stack: Stack
    arms: dict[str, Paradigm]
    router: Router | None
    sandbox: tuple[bool, str]
    backend: Backend
    model_record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def open(cls, config: ServeConfig, backend: Backend | None = None) -> Service:
        """Load the model (or reach its server), the router and the arms; errors are one line."""
        router = load_router(config.router) if config.router else None
        limits = AgentLimits(
            max_tokens_per_turn=config.turn_tokens,
            token_budget=config.request_tokens,
            context_window=config.n_ctx,
        )
        arms = serving_arms(
            config.paradigm, config.harness, router.arms if router else (), limits=limits
        )
        if backend is None:
            card = resolve(config.model, base_url=config.base_url)
            backend = open_backend(
                card, n_ctx=config.n_ctx, n_threads=config.n_threads, api_key=config.upstream_key
            )
        info = await backend.describe()
        meter = open_meter(
            config.energy, in_process=info.in_process, same_machine=info.same_machine
        )
        stack = build_stack(backend, info, meter, slots=config.slots)
        record = {"backend": backend.name, "backend_kind": info.kind, "energy": meter.describe()}
        record |= info.identity
        return cls(config, stack, arms, router, availability(), backend, record)

    async def aclose(self) -> None:
        await self.backend.aclose()

    def ready(self) -> dict[str, Any]:
        ok, detail = self.sandbox
        return {
            "model": self.config.model,
            "backend": self.model_record.get("backend"),
            "arms": list(self.arms),
            "router": self.router.method if self.router else None,
            "sandbox": {"available": ok, "detail": detail},
            "python_tool": "offered" if ok else f"left out: {detail}",
        }

    def uses_tools(self) -> bool:
        return any(p.uses_tools for p in self.arms.values())

    def choose(self, request: ChatRequest, problem: Problem) -> tuple[str, bool]:
        if self.router is None:
            return next(iter(self.arms)), False
        return self.router.choose(problem, declared_type=request.declared_type), True

    async def answer(
        self,
        request: ChatRequest,
        problem: Problem,
        *,
        on_step: OnStep | None = None,
    ) -> Served:
        """Answer one request, stated as `problem` (ChatRequest.problem)."""
        request_id = problem.id
        arm, routed = self.choose(request, problem)
        paradigm = self.arms[arm]
        hints = request.slmscope
        tokens = min(self.config.request_tokens, (hints and hints.max_request_tokens) or 1 << 40)
        seconds = min(
            self.config.request_seconds, (hints and hints.max_request_seconds) or float("inf")
        )
        asked = request.max_completion_tokens or request.max_tokens or self.config.turn_tokens
        gen = GenerationConfig(
            max_tokens=min(asked, self.config.turn_tokens),
            temperature=request.temperature if request.temperature is not None else 0.0,
            top_p=request.top_p if request.top_p is not None else 0.9,
            seed=request.seed if request.seed is not None else 0,
        )
        steps: list[Step] = []

        def made(step: Step) -> None:
            steps.append(step)
            if on_step is not None:
                on_step(step)

        started = time.perf_counter()
        budgeted = BudgetedBackend(self.stack.backend, tokens)
        try:
            async with asyncio.timeout(seconds):
                trace = await solve(problem, paradigm, budgeted, gen, on_step=made)
        except TimeoutError:
            error = f"the request's wall-time budget of {seconds:g} s is spent"
            trace = Trace(tuple(steps), None, "timeout", error, tools=())
        wall = time.perf_counter() - started
        return Served(
            request_id,
            problem,
            trace,
            arm,
            paradigm,
            routed,
            wall,
            budgeted.first_token_at,
            cut=budgeted.last_finish == "length",
        )
