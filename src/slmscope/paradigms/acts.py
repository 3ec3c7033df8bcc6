"""What an agent did with its tools, read from its trace: the calls it made (specialists'
included), their errors, its hand-offs, what it copied from the prompt's example, and whether
its answer draws on what the tools returned.

An agent that answers at once is the base model with a longer prompt; these counts, stored with
every result, let a report say so. `acted`: at least one call reached a real tool or specialist
(a copied example action, an unknown tool or a refused repeat does not count). `observed`: a
value a tool returned (a number, or a specialist's short answer) appears in the final answer or
in the last thought.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from slmscope.paradigms.agent_prompts import EXAMPLE_ANSWER, copied_thought
from slmscope.paradigms.trace import Step, Trace
from slmscope.tasks.numeric import parse_numbers

RAN = (None, "tool_error")  # a step whose call reached its tool (errors from the tool included)
SHORT_ANSWER = 80  # a returned text this short can be an answer as a whole (a label, an entity)


@dataclass(frozen=True)
class Acts:
    tools_offered: int
    tool_calls: int = 0  # calls that reached a tool, hand-offs not counted
    tool_errors: int = 0
    handoffs: int = 0
    copies: int = 0  # copied example actions, action shapes, thoughts and answers
    observed: bool = False
    by_tool: dict[str, int] = field(default_factory=dict)
    # Turns the token budget reached (harness.budget_end): cut (inside an action: it did not
    # run), the same cut action again by the same agent, and closed in time by the grammar.
    cut_turns: int = 0
    cut_actions: int = 0
    repeated_cuts: int = 0
    closed_turns: int = 0

    @property
    def acted(self) -> bool:
        return self.tool_calls + self.handoffs > 0

    def tools_used(self) -> str | None:
        return json.dumps(self.by_tool, sort_keys=True) if self.by_tool else None


def _thought(step: Step) -> str:
    start, end = step.output.find("<think>"), step.output.find("</think>")
    if start < 0:
        return "" if end < 0 else step.output[:end]
    return step.output[start + 7 : end if end > start else None]


def _returned(step: Step) -> str | None:
    """What the tool returned, when it ran without error (a hand-off's answer without the
    supervisor's note)."""
    if step.tool is None or step.error is not None or step.observation is None:
        return None
    return step.observation.split("\n(from ", 1)[0] if step.handoff else step.observation


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=0.005)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[\w.%-]+", text.lower())) + " "


def _draws_on(returned: list[str], said: str, task: str) -> bool:
    """Whether `said` holds a value the tools returned: a number (one the task itself holds
    counts only when the tool returned it alone, as a cell or a result), or a short returned
    text as whole words."""
    said_numbers = [n.value for n in parse_numbers(said)]
    given = [n.value for n in parse_numbers(task)]
    for text in returned:
        numbers = parse_numbers(text)
        for number in numbers:
            if len(numbers) > 1 and any(_close(number.value, v) for v in given):
                continue  # a row of the task's own table: not the tool's work
            if any(_close(number.value, v) for v in said_numbers):
                return True
        plain = _words(text)
        if not numbers and plain.strip() and len(plain) <= SHORT_ANSWER and plain in _words(said):
            return True
    return False


def _task(trace: Trace) -> str:
    """The task as the first agent was given it (its first user message)."""
    for step in trace.steps[:1]:
        for message in step.messages:
            if message.get("role") == "user":
                return str(message.get("content") or "")
    return ""


def acts_of(trace: Trace) -> Acts:
    """The tool use of one sample (zeros for a paradigm without tools)."""
    calls = [s for s in trace.steps if s.tool is not None]
    ran = [s for s in calls if s.error in RAN and not s.copied]
    by_tool = Counter(s.tool for s in ran if s.tool)
    copies = sum(s.error == "example_copy" or s.copied for s in calls)  # shapes: react.py
    copies += sum(copied_thought(_thought(s)) for s in trace.steps)
    returned = [r for r in map(_returned, ran) if r]
    answer = trace.final_answer or ""
    if answer.strip() == EXAMPLE_ANSWER and not any(EXAMPLE_ANSWER in r for r in returned):
        copies += 1
    last = trace.steps[-1] if trace.steps else None
    said = answer + "\n" + (_thought(last) if last else "")
    return Acts(
        tools_offered=len(trace.tools),
        tool_calls=sum(not s.handoff for s in ran),
        tool_errors=sum(s.error == "tool_error" and not s.handoff for s in ran),
        handoffs=sum(s.handoff for s in ran),
        copies=copies,
        observed=bool(answer)
        and trace.agent_outcome in (None, "ok")  # a fallback's answer is base's, not the tools'
        and _draws_on(returned, said, _task(trace)),
        by_tool=dict(by_tool),
        **_cuts(trace.steps),
    )


def _cuts(steps: tuple[Step, ...]) -> dict[str, int]:
    """The turns the token budget reached, by how it ended them (the fields of `Acts`)."""
    cut = [s for s in steps if s.cut in ("action", "reply")]
    actions = [(s.agent, s.output.strip()) for s in cut if s.cut == "action"]
    return {
        "cut_turns": len(cut),
        "cut_actions": len(actions),
        "repeated_cuts": len(actions) - len(set(actions)),
        "closed_turns": sum(s.cut in ("input", "thought") for s in steps),
    }
