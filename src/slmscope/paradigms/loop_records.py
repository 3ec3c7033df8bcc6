"""What an agent loop is given and what it comes to: its limits, its end, and how its failures
are named (the loop itself is react.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from slmscope.paradigms.trace import Outcome, Step


@dataclass(frozen=True)
class AgentLimits:
    """The study's default of 5 turns; budgets that end a runaway sample cleanly."""

    max_turns: int = 5
    max_tokens_per_turn: int = 256
    token_budget: int = 16_000  # prompt + completion tokens over all turns of one loop
    context_window: int = 4096
    max_observation_chars: int = 1500
    tool_timeout_s: float = 30.0
    max_repeats: int = 1  # identical actions tolerated before the loop ends
    max_repairs: int = 2  # repair messages per loop under the `repair` harness


def action_key(tool: str, args: Mapping[str, Any]) -> str:
    """An action as the loop tells repeats and the prompt's examples apart."""
    return f"{tool}|{json.dumps(args, sort_keys=True)}"


@dataclass(frozen=True)
class LoopEnd:
    answer: str | None
    outcome: Outcome
    error: str | None = None
    steps: tuple[Step, ...] = ()
    tools: tuple[str, ...] = ()  # what the loop offered (set by react)


@dataclass(frozen=True)
class FailureNames:
    """Which outcome each failure of this loop is called."""

    unknown_tool: Outcome = "unknown_tool"
    repeated: Outcome = "max_steps"


class StopLoop(Exception):
    """Raised by a tool to end the loop that called it, with this outcome (and answer)."""

    def __init__(self, outcome: Outcome, message: str, answer: str | None = None) -> None:
        super().__init__(message)
        self.outcome, self.answer = outcome, answer


@dataclass(frozen=True)
class Handed:
    """What a hand-off came to: the specialist's answer (or why there is none) and every step
    it took, so that the trace is built in the order the calls were made."""

    text: str
    steps: tuple[Step, ...]
    failed: bool = False


@runtime_checkable
class HandOff(Protocol):
    """A tool that is another agent: the loop runs it without the tool time limit (its own
    turns, budgets and backend timeouts bound it) and keeps its steps."""

    async def hand_off(self, args: Mapping[str, Any]) -> Handed: ...
