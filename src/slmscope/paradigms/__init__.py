"""Paradigms: how a model is put to work on a task (base, single agent, multi agent, fallback)."""

from __future__ import annotations

from collections.abc import Sequence

from slmscope.errors import ConfigError
from slmscope.paradigms.base import Base, Paradigm
from slmscope.paradigms.fallback import Fallback
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent, Specialist, TeamLimits
from slmscope.paradigms.react import HARNESSES, TOOL_MODES, Harness, ToolMode
from slmscope.paradigms.single_agent import SingleAgent
from slmscope.paradigms.trace import Trace

__all__ = [
    "HARNESSES",
    "PARADIGM_NAMES",
    "TOOL_MODES",
    "AgentLimits",
    "Harness",
    "Paradigm",
    "ToolMode",
    "Trace",
    "get_paradigm",
]

PARADIGM_NAMES = ("base", "single", "multi", "single+fallback", "multi+fallback")


def get_paradigm(
    name: str,
    *,
    limits: AgentLimits | None = None,
    roster: Sequence[Specialist] = (),
    mode: ToolMode = "tags",
    harness: Harness = "repair",
) -> Paradigm:
    """The paradigm called `name` (see PARADIGM_NAMES); agents call tools in `mode`, under
    `harness` (see HARNESSES; the base paradigm has none)."""
    limits = limits or AgentLimits()
    if name.endswith("+fallback") and name != "base+fallback":
        inner = name.removesuffix("+fallback")
        return Fallback(
            get_paradigm(inner, limits=limits, roster=roster, mode=mode, harness=harness)
        )
    if name == "base":
        return Base()
    if name == "single":
        return SingleAgent(limits, mode=mode, harness=harness)
    if name == "multi":
        team = TeamLimits(**{f: getattr(limits, f) for f in AgentLimits.__dataclass_fields__})
        return MultiAgent(team, roster, mode=mode, harness=harness)
    raise ConfigError(f"unknown paradigm {name!r}; available: {', '.join(PARADIGM_NAMES)}")
