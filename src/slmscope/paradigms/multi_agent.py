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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from slmscope.errors import ConfigError
from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.loop_records import AgentLimits, FailureNames, LoopEnd, StopLoop
from slmscope.paradigms.prompts import task_text
from slmscope.paradigms.react import (
    Harness,
    ToolMode,
    action_key,
    agent_prompt,
    finish,
    react,
)
from slmscope.paradigms.single_agent import task_tools
from slmscope.paradigms.trace import Step, Trace
from slmscope.tasks.record import Task
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
    """A specialist seen from the supervisor: a tool whose run is the specialist's own loop."""

    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"task": {"type": "string", "description": "what to do"}},
        "required": ["task"],
        "additionalProperties": False,
    }

    def __init__(
        self, specialist: Specialist, tools: Mapping[str, Tool], task: Task, run: MultiAgentRun
    ) -> None:
        self.name = specialist.name
        self.description = specialist.when or specialist.role
        self.specialist, self.tools, self.task, self.run_state = specialist, tools, task, run

    async def run(self, args: Mapping[str, Any]) -> str:
        state = self.run_state
        end = LoopEnd(None, "backend_error", "the specialist did not run")
        try:
            request = _request(args, self.name)
            state.handoffs += 1
            if state.handoffs > state.limits.max_handoffs:
                limit = state.limits.max_handoffs
                raise StopLoop("delegation_loop", f"more than {limit} hand-offs")
            end = await react(
                agent=self.name,
                system=agent_prompt(self.specialist.role, self.tools, state.mode, self.task),
                user=f"{request}\n\nThe original task:\n{task_text(self.task)}",
                tools=self.tools,
                backend=state.backend,
                gen=state.gen,
                limits=state.limits,
                mode=state.mode,
                harness=state.harness,
                task=self.task,
            )
        finally:  # every hand-off that reached the specialist, even one that failed
            state.blocks.append((action_key(self.name, args), end.steps))
        if end.outcome != "ok" or not end.answer:
            raise ToolError(f"{self.name} could not finish ({end.outcome}: {end.error})")
        return f"{end.answer}\n{AFTER_HANDOFF.format(name=self.name)}"


@dataclass(frozen=True)
class TeamLimits(AgentLimits):
    max_handoffs: int = 4


@dataclass
class MultiAgentRun:
    """One sample's team: what the specialists share, and their steps, one block a hand-off."""

    backend: Backend
    gen: GenerationConfig
    limits: TeamLimits
    mode: ToolMode
    harness: Harness
    handoffs: int = 0
    blocks: list[tuple[str, tuple[Step, ...]]] = field(default_factory=list)  # (hand-off, steps)

    def steps(self, supervisor: Sequence[Step]) -> tuple[Step, ...]:
        """Every step in the order it was made: each hand-off's specialist steps before the
        supervisor step that made it (a repeated or refused hand-off ran nobody)."""
        pending = list(self.blocks)
        ordered: list[Step] = []
        for step in supervisor:
            if step.tool and step.tool_input:
                asked = action_key(step.tool, json.loads(step.tool_input))
                if pending and pending[0][0] == asked:
                    ordered += pending.pop(0)[1]
            ordered.append(step)
        return tuple(ordered)


class MultiAgent:
    name = "multi"

    def __init__(
        self,
        limits: TeamLimits | None = None,
        roster: Sequence[Specialist] = (),
        knowledge: KnowledgeSearch | None = None,
        mode: ToolMode = "tags",
        harness: Harness = "repair",
    ) -> None:
        self.limits = limits or TeamLimits()
        self.mode, self.harness = mode, harness
        self.roster = tuple(roster) or DEFAULT_ROSTER
        self.knowledge = knowledge or KnowledgeSearch()

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace:
        state = MultiAgentRun(backend, gen, self.limits, self.mode, self.harness)
        every = task_tools(task, self.knowledge)
        team: dict[str, Tool] = {
            s.name: Delegate(s, {t: every[t] for t in s.tools if t in every}, task, state)
            for s in self.roster
        }
        end = await react(
            agent="supervisor",
            system=agent_prompt(SUPERVISOR_ROLE, team, self.mode, task),
            user=task_text(task),
            tools=team,
            backend=backend,
            gen=gen,
            limits=self.limits,
            names=FailureNames(unknown_tool="routing_failure", repeated="delegation_loop"),
            mode=self.mode,
            harness=self.harness,
            repeat_answers=True,
            task=task,
        )
        return finish(task, dataclasses.replace(end, steps=state.steps(end.steps)))
