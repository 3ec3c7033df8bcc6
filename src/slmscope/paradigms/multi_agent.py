"""The multi-agent system: a tool-less supervisor routes the task to specialists, each a ReAct
loop with its own tools, and assembles their answers.

The supervisor is itself a ReAct loop whose tools are the specialists, each described to it
by when to ask it: asking an unknown specialist ends as `routing_failure`, more hand-offs than
allowed as `delegation_loop`, and so does asking the same specialist the same thing again,
under the `strict` harness. Under `repair`, that repeat means the supervisor has nothing to
add: the specialist's answer becomes the team's. Specialists cannot delegate (depth 1).
The default roster follows the reference study; a YAML roster can replace it:

    - name: quant
      role: You are a quantitative analyst ...
      when: Ask for anything with numbers ...   # optional; the role by default
      tools: [calculator, python]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from slmscope.errors import ConfigError
from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.agent_prompts import ToolMode, agent_prompt
from slmscope.paradigms.base import Given, OnStep
from slmscope.paradigms.harness import DEFAULT_HARNESS, Harness, harness_named
from slmscope.paradigms.loop_records import (
    AgentLimits,
    FailureNames,
    Handed,
    LoopEnd,
    StopLoop,
)
from slmscope.paradigms.react import finish, react
from slmscope.paradigms.single_agent import task_tools
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Problem
from slmscope.tools.base import Tool, ToolError, require_str
from slmscope.tools.knowledge import KnowledgeSearch


@dataclass(frozen=True)
class Specialist:
    name: str
    role: str
    tools: tuple[str, ...]
    when: str = ""  # when the supervisor should ask it (its tool description); the role if empty


DEFAULT_ROSTER: tuple[Specialist, ...] = (
    Specialist(
        "knowledge_agent",
        "You are a financial knowledge expert: definitions, formulas and facts.",
        ("calculator", "knowledge_search"),
        "Ask it what a financial term means, which formula applies, or for a financial fact.",
    ),
    Specialist(
        "nlp_agent",
        "You are a financial language expert: sentiment, classification, "
        "named entities and summaries.",
        ("knowledge_search", "lookup"),
        "Ask it to read text: sentiment, classifying a sentence or a record, named entities, "
        "summaries.",
    ),
    Specialist(
        "quant_agent",
        "You are a quantitative analyst: numbers, tables and calculations.",
        ("calculator", "python", "lookup"),
        "Ask it anything with numbers: a value from a table, arithmetic, percentages, growth, "
        "ratios, any question whose answer is a number.",
    ),
)
SUPERVISOR_ROLE = (
    "You are the supervisor of a team of financial specialists. You have no tools of your "
    "own: hand each part of the task to the right specialist by calling it as a tool with "
    '{"task": "..."}, then combine their answers into the final answer. Once a specialist has '
    "answered, give the final answer, or hand a different request on."
)
AFTER_HANDOFF = "(from {name}) Now give the final answer, or hand a different request on."
TOOL_NAMES = ("calculator", "python", "knowledge_search", "lookup")


def load_roster(path: Path) -> tuple[Specialist, ...]:
    """A roster from YAML: a list of {name, role, tools}; problems name the file and entry."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read this roster ({err})") from err
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: a roster is a non-empty YAML list of specialists")
    roster = []
    for n, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not all(entry.get(k) for k in ("name", "role")):
            raise ConfigError(f"{path}: specialist {n} needs 'name' and 'role'")
        tools = tuple(entry.get("tools") or ())
        unknown = [t for t in tools if t not in TOOL_NAMES]
        if unknown:
            raise ConfigError(
                f"{path}: specialist {entry['name']!r}: unknown tool(s) {unknown}; "
                f"known: {', '.join(TOOL_NAMES)}"
            )
        roster.append(
            Specialist(str(entry["name"]), str(entry["role"]), tools, str(entry.get("when") or ""))
        )
    if len({s.name for s in roster}) != len(roster):
        raise ConfigError(f"{path}: specialist names must be unique")
    return tuple(roster)


def _request(args: Mapping[str, Any], name: str) -> str:
    """The hand-off's text: "task", or else the string fields the supervisor named otherwise
    (small supervisors write {"question": ...} or {"sentence": ...}; the name carries nothing
    the specialist needs, so it is not a reason to fail the hand-off)."""
    if "task" in args:
        return require_str(args, "task", name)
    texts = [f"{k}: {v}" if len(args) > 1 else v for k, v in args.items() if isinstance(v, str)]
    if not texts or not all(t.strip() for t in texts):
        raise ToolError(f'{name} needs {{"task": "what to do"}}')
    return "\n".join(texts)


class Delegate:
    """A specialist seen from the supervisor: a tool whose run is the specialist's own loop
    (a HandOff: its steps come back with its answer)."""

    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"task": {"type": "string", "description": "what to do"}},
        "required": ["task"],
        "additionalProperties": False,
    }

    def __init__(
        self, specialist: Specialist, tools: Mapping[str, Tool], problem: Problem, run: TeamRun
    ) -> None:
        self.name = specialist.name
        self.description = specialist.when or specialist.role
        self.specialist, self.tools, self.problem, self.team = specialist, tools, problem, run

    async def hand_off(self, args: Mapping[str, Any]) -> Handed:
        team = self.team
        try:
            request = _request(args, self.name)
        except ToolError as err:
            return Handed(str(err), (), failed=True)
        team.handoffs += 1
        if team.handoffs > team.limits.max_handoffs:
            raise StopLoop("delegation_loop", f"more than {team.limits.max_handoffs} hand-offs")
        left = team.limits.specialist_budget - team.spent
        if left <= 0:
            spent = f"the specialists' token budget of {team.limits.specialist_budget} is spent"
            return Handed(spent, (), failed=True)
        limits = dataclasses.replace(team.limits, token_budget=min(team.limits.token_budget, left))
        end: LoopEnd = await react(
            agent=self.name,
            system=agent_prompt(self.specialist.role, self.tools, team.mode),
            user=f"{request}\n\nThe original task:\n{self.problem.text()}",
            tools=self.tools,
            backend=team.backend,
            gen=team.gen,
            limits=limits,
            mode=team.mode,
            harness=team.harness,
            fmt=self.problem.answer,
            on_step=team.on_step,
        )
        team.spent += sum(s.usage.total_tokens for s in end.steps if s.usage is not None)
        if end.outcome != "ok" or not end.answer:
            why = f"{self.name} could not finish ({end.outcome}: {end.error})"
            return Handed(why, end.steps, failed=True)
        return Handed(f"{end.answer}\n{AFTER_HANDOFF.format(name=self.name)}", end.steps)

    async def run(self, args: Mapping[str, Any]) -> str:
        """As a plain tool (outside a loop): the answer, or ToolError."""
        handed = await self.hand_off(args)
        if handed.failed:
            raise ToolError(handed.text)
        return handed.text


@dataclass(frozen=True)
class TeamLimits(AgentLimits):
    """The supervisor's loop has the agent limits; each specialist's loop has them too, its
    token budget cut to what is left of `specialist_budget`, which all hand-offs of one
    sample share. A hand-off has no tool time limit: a specialist is an agent, not a call."""

    max_handoffs: int = 4
    specialist_budget: int = 32_000


@dataclass
class TeamRun:
    """One sample's team: what the specialists share."""

    backend: Backend
    gen: GenerationConfig
    limits: TeamLimits
    mode: ToolMode
    harness: Harness
    on_step: OnStep | None = None
    handoffs: int = 0
    spent: int = 0  # tokens the specialists have spent on this sample


class MultiAgent:
    name = "multi"
    uses_tools = True
    parts: tuple[str, ...] = ()

    def __init__(
        self,
        limits: TeamLimits | None = None,
        roster: Sequence[Specialist] = (),
        knowledge: KnowledgeSearch | None = None,
        mode: ToolMode = "tags",
        harness: Harness | str = DEFAULT_HARNESS,
    ) -> None:
        self.limits = limits or TeamLimits()
        self.mode = mode
        self.harness: Harness | None = (
            harness_named(harness) if isinstance(harness, str) else harness
        )
        self.roster = tuple(roster) or DEFAULT_ROSTER
        self.knowledge = knowledge or KnowledgeSearch()

    async def solve(
        self,
        problem: Problem,
        backend: Backend,
        gen: GenerationConfig,
        *,
        on_step: OnStep | None = None,
        given: Given | None = None,
    ) -> Trace:
        assert self.harness is not None
        team_run = TeamRun(backend, gen, self.limits, self.mode, self.harness, on_step)
        every = task_tools(problem, self.knowledge)
        team: dict[str, Tool] = {
            s.name: Delegate(s, {t: every[t] for t in s.tools if t in every}, problem, team_run)
            for s in self.roster
        }
        end = await react(
            agent="supervisor",
            system=agent_prompt(SUPERVISOR_ROLE, team, self.mode),
            user=problem.text(),
            tools=team,
            backend=backend,
            gen=gen,
            limits=self.limits,
            names=FailureNames(unknown_tool="routing_failure", repeated="delegation_loop"),
            mode=self.mode,
            harness=self.harness,
            repeat_answers=True,
            fmt=problem.answer,
            on_step=on_step,
        )
        return finish(problem.answer, end)
