"""Paradigms: how a model is put to work on a problem (base, single agent, multi agent,
fallback), and the serving core that runs one on one problem, with no sweep."""

from __future__ import annotations

from collections.abc import Sequence

from slmscope.errors import ConfigError
from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.acts import Acts, acts_of
from slmscope.paradigms.agent_prompts import TOOL_MODES, ToolMode
from slmscope.paradigms.base import (
    NO_HARNESS,
    Base,
    OnStep,
    Paradigm,
    arm_name,
    harness_label,
    split_arm,
)
from slmscope.paradigms.fallback import Fallback
from slmscope.paradigms.harness import DEFAULT_HARNESS, HARNESSES, Harness, harness_named
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent, Specialist, TeamLimits
from slmscope.paradigms.single_agent import SingleAgent
from slmscope.paradigms.trace import Cost, Trace
from slmscope.tasks.record import Problem

__all__ = [
    "DEFAULT_HARNESS",
    "HARNESSES",
    "NO_HARNESS",
    "PARADIGM_NAMES",
    "TOOL_MODES",
    "Acts",
    "AgentLimits",
    "Cost",
    "Harness",
    "OnStep",
    "Paradigm",
    "ToolMode",
    "Trace",
    "acts_of",
    "get_paradigm",
    "harness_label",
    "harness_named",
    "serving_arms",
    "solve",
]

PARADIGM_NAMES = ("base", "single", "multi", "single+fallback", "multi+fallback")
FALLBACK = "+fallback"


def get_paradigm(
    name: str,
    *,
    limits: AgentLimits | None = None,
    roster: Sequence[Specialist] = (),
    mode: ToolMode = "tags",
    harness: Harness | str = DEFAULT_HARNESS,
) -> Paradigm:
    """The paradigm called `name` (see PARADIGM_NAMES); agents call tools in `mode`, under
    `harness` (or the one of that name: see HARNESSES; the base paradigm has none)."""
    limits = limits or AgentLimits()
    if isinstance(harness, str):  # an unknown name is refused for every paradigm, base included
        harness = harness_named(harness)
    if name.endswith(FALLBACK) and name != "base" + FALLBACK:
        inner = name.removesuffix(FALLBACK)
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


async def solve(
    problem: Problem,
    paradigm: Paradigm,
    backend: Backend,
    gen: GenerationConfig | None = None,
    *,
    on_step: OnStep | None = None,
) -> Trace:
    """The serving core: one problem (a served request has no reference) under one configured
    paradigm, on a backend stack (models.stack), with each step passed to `on_step` as it is
    made. The Trace holds the answer and, through `Trace.cost()`, what it cost."""
    return await paradigm.solve(problem, backend, gen or GenerationConfig(), on_step=on_step)


def serving_arms(
    paradigm: str,
    harness: str,
    routed: Sequence[str] = (),
    *,
    limits: AgentLimits | None = None,
    mode: ToolMode = "tags",
) -> dict[str, Paradigm]:
    """The paradigms a server answers with, by arm name: the configured `paradigm` under
    `harness`; or, with a router, each arm it may choose (`routed`, each under its own harness
    where it names one), an agent arm given a fallback to base where the configured paradigm
    has one."""
    configured = get_paradigm(paradigm, limits=limits, mode=mode, harness=harness)
    if not routed:
        return {arm_name(configured.name, harness_label(configured)): configured}
    found: dict[str, Paradigm] = {}
    for arm in routed:
        name, own = split_arm(arm)
        built = get_paradigm(name, limits=limits, mode=mode, harness=own or harness)
        if (
            isinstance(configured, Fallback)
            and built.uses_tools
            and not isinstance(built, Fallback)
        ):
            built = Fallback(built)
        found[arm] = built
    return found
