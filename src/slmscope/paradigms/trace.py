"""What a paradigm returns: the steps it took (one per model call) and the sample's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slmscope.metering.energy import EnergyReading
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


@dataclass(frozen=True)
class Trace:
    steps: tuple[Step, ...]
    final_answer: str | None
    outcome: Outcome
    error: str | None = None
    agent_outcome: Outcome | None = None  # with a fallback: the agent's own outcome
