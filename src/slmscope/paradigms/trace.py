"""What a paradigm returns: the steps it took (one per model call) and the sample's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slmscope.metering.energy import UNAVAILABLE, EnergyReading
from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import Message

Outcome = Literal[
    "ok",
    "no_final_answer",
    "malformed_action",
    "unknown_tool",
    "tool_error",
    "max_steps",
    "context_overflow",
    "routing_failure",
    "delegation_loop",
    "backend_error",
    "timeout",
]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Step:
    """One model call. `usage` and `timings` are None when the call itself failed."""

    agent: str
    turn: int
    messages: tuple[Message, ...]
    output: str
    usage: Usage | None
    timings: Timings | None
    tool: str | None = None
    tool_input: str | None = None
    observation: str | None = None
    error: str | None = None
    energy: EnergyReading | None = None
    repair: bool = False  # the call answered a repair message (the `repair` harness)
    cache_hit: bool = False  # the reply was replayed from the response cache
    handoff: bool = False  # its action handed the task to a specialist
    copied: bool = False  # its action copies the shape of the prompt's example (acts.py)
    cut: str | None = None  # the turn's token budget: see harness.budget_end


@dataclass(frozen=True)
class Trace:
    steps: tuple[Step, ...]
    final_answer: str | None
    outcome: Outcome
    error: str | None = None
    agent_outcome: Outcome | None = None  # with a fallback: the agent's own outcome
    tools: tuple[str, ...] = ()  # the tools (or specialists) the paradigm offered the model

    def cost(self) -> Cost:
        """What the sample's calls cost, summed over its steps."""
        calls = [s.usage for s in self.steps if s.usage is not None]
        readings = [s.energy for s in self.steps if s.energy is not None]
        try:
            energy = EnergyReading.total(readings) if readings else UNAVAILABLE
        except ValueError:  # calls metered by different methods cannot be added up
            energy = UNAVAILABLE
        timed = [s for s in self.steps if s.timings is not None]
        return Cost(
            prompt_tokens=sum(u.prompt_tokens for u in calls),
            completion_tokens=sum(u.completion_tokens for u in calls),
            cached_tokens=sum(u.cached_tokens for u in calls),
            calls=len(self.steps),
            cache_hits=sum(s.cache_hit for s in self.steps),
            queue_s=sum(s.timings.queue_s for s in timed if s.timings),
            replayed_s=sum(s.timings.latency_s for s in timed if s.timings and s.cache_hit),
            ttft_s=next((s.timings.ttft_s for s in timed if s.timings), None),
            energy=energy,
            counted=any(u.source == "counted" for u in calls),
        )


@dataclass(frozen=True)
class Cost:
    """A trace's cost. `queue_s`: time its calls waited for a free slot; `replayed_s`: the
    time its cache-replayed calls took when first made (their original cost counts)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    calls: int
    cache_hits: int
    queue_s: float
    replayed_s: float
    ttft_s: float | None
    energy: EnergyReading
    counted: bool  # some call's tokens were counted here, not reported by the backend

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
