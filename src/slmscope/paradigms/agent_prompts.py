"""What an agent is told: its tools, the protocol and a worked example.

Small models copy a prompt's example word for word, so the worked example is about a problem
unlike any task here (umbrella sales), uses a tool the agent really has, and shows a tool turn
then an answer drawn on its observation. It shows no direct answer: a 0.5B model copied
`No tool is needed.` and answered at once on every sample. `example_actions` lists the
example's actions and `EXAMPLE_THOUGHTS` its thoughts, so that an agent that copies one instead
of working on its own task is counted (paradigms/acts.py).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from slmscope.tasks.numeric import parse_numbers
from slmscope.tools.base import Tool

ToolMode = Literal["tags", "native"]
TOOL_MODES: tuple[str, ...] = ToolMode.__args__  # type: ignore[attr-defined]

EXAMPLE_TASK = (
    "A shop sold 40 umbrellas on Monday and 55 on Tuesday. By what percent did sales rise?"
)
EXAMPLE_ANSWER = "37.5"
EXAMPLE_THOUGHTS = (
    "I need the percent change from 40 to 55.",
    "The result is 37.5, so sales rose by 37.5 percent.",
)
# One example input per tool the loop knows; a specialist (a tool taking "task") gets a request.
_EXAMPLE_INPUTS: dict[str, dict[str, str]] = {
    "calculator": {"expression": "(55 - 40) / 40 * 100"},
    "python": {"code": "print((55 - 40) / 40 * 100)"},
    "lookup": {"row": "Umbrellas", "column": "Tuesday"},
    "knowledge_search": {"query": "percent change formula"},
}
# The request holds no numbers: the specialist is shown the original task, and a request of
# the form "from 40 to 55" invited a 135M supervisor to write "from 2021 to 2022 to ..." on
# until its token budget ran out.
_EXAMPLE_REQUEST = {"task": "Find the percent rise in umbrella sales."}


def describe_tools(tools: Mapping[str, Tool]) -> str:
    return "\n".join(
        f"- {name}: {tool.description} Input schema: "
        f"{json.dumps(tool.schema.get('properties', {}))}"
        for name, tool in tools.items()
    )


def _example_input(name: str, tool: Tool) -> dict[str, Any]:
    if name in _EXAMPLE_INPUTS:
        return _EXAMPLE_INPUTS[name]
    if "task" in tool.schema.get("properties", {}):
        return _EXAMPLE_REQUEST
    fields = tool.schema.get("required") or list(tool.schema.get("properties", {}))[:1]
    return {f: "..." for f in fields}


_COMPUTES = ("calculator", "python")


def _computes(tool: Tool) -> int:
    """How many computing tools a specialist (a tool with tools of its own) holds."""
    own = getattr(tool, "tools", None)
    return sum(name in own for name in _COMPUTES) if isinstance(own, Mapping) else 0


def _example_tool(tools: Mapping[str, Tool]) -> str:
    """The tool the example (a percent change) uses: one that can compute; for a supervisor,
    the specialist with the most computing tools (read from its tools, not its name: a 0.5B
    supervisor sent numeric tasks to the specialist its example showed, which had been the
    first listed); else the first the agent has."""
    for name in _COMPUTES:
        if name in tools:
            return name
    if not tools:
        raise ValueError("an agent needs at least one tool")
    return max(tools, key=lambda name: _computes(tools[name]))


def example_actions(tools: Mapping[str, Tool]) -> list[tuple[str, dict[str, Any]]]:
    """The (tool, input) pairs the prompt shows; an agent that sends one of them is copying."""
    return [(name, _example_input(name, tool)) for name, tool in tools.items()]


def worked_example(tools: Mapping[str, Tool]) -> str:
    name = _example_tool(tools)
    action = json.dumps({"tool": name, "input": _example_input(name, tools[name])})
    return (
        f"Example, on a different task ({EXAMPLE_TASK}):\n"
        f"<think>{EXAMPLE_THOUGHTS[0]}</think><action>{action}</action>\n"
        f"<observation>{EXAMPLE_ANSWER}</observation>\n"
        f"<think>{EXAMPLE_THOUGHTS[1]}</think><final_answer>{EXAMPLE_ANSWER}"
        "</final_answer>\n"
        "Work on your own task, with its own numbers and words, not on the example."
    )


def protocol_prompt(role: str, tools: Mapping[str, Tool]) -> str:
    return (
        f"{role}\n\nYou can use these tools:\n{describe_tools(tools)}\n\n"
        "Work in turns. In each turn, first think inside <think></think>. Then either call one "
        'tool with <action>{"tool": "NAME", "input": {...}}</action> (strict JSON) and stop; '
        "the result comes back as <observation>...</observation>. Or, when you know the "
        "answer, write it inside <final_answer></final_answer>.\n\n"
        f"{worked_example(tools)}"
    )


def native_prompt(role: str) -> str:
    """The system prompt in native mode: the server shows the tools to the model itself."""
    return (
        f"{role}\n\nCall the tools you are given when they help, one per turn; each result "
        "comes back to you. When you know the answer, reply without calling a tool and put "
        "the answer inside <final_answer></final_answer>."
    )


def agent_prompt(role: str, tools: Mapping[str, Tool], mode: ToolMode) -> str:
    """An agent's system prompt (the answer's format is in the problem, as every paradigm
    states it: Problem.text)."""
    return native_prompt(role) if mode == "native" else protocol_prompt(role, tools)


def tool_specs(tools: Mapping[str, Tool], *, strict: bool = False) -> list[dict[str, Any]]:
    """The tools as OpenAI function specs, for native mode. `strict` asks the server to hold
    the arguments to the schema (no other fields), where it can."""
    specs: list[dict[str, Any]] = []
    for name, t in tools.items():
        function: dict[str, Any] = {
            "name": name,
            "description": t.description,
            "parameters": {**t.schema, "additionalProperties": False} if strict else t.schema,
        }
        if strict:
            function["strict"] = True
        specs.append({"type": "function", "function": function})
    return specs


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w%.]+", " ", text.lower()).split()).strip(" .")


_COPYABLE = tuple(_plain(t) for t in EXAMPLE_THOUGHTS)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def copied_thought(thought: str) -> bool:
    """Whether a thought repeats one of the example's thoughts (case, spacing and punctuation
    aside)."""
    said = _plain(thought)
    return bool(said) and any(said == t or (len(t) > 20 and t in said) for t in _COPYABLE)


def _alike(text: str, example: str) -> bool:
    """The same text once numbers are set aside (near enough: 0.8 of its characters)."""
    a, b = (_NUMBER.sub("N", t).lower() for t in (text, example))
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def copied_shape(
    tool: str, args: Mapping[str, Any], tools: Mapping[str, Tool], task: str, *, numeric: bool
) -> bool:
    """Whether an action copies the example's shape with other numbers in place of its own:
    the same tool, the same text once numbers are set aside, and numbers of its own (not the
    example's) that the task does not hold (`Compute the percent rise from 18% to 10.5%`
    handed off on a sentiment task), or, where the answer is not a number, that are all years
    (`(2024 - 2023) / 2023 * 100` on a monetary-policy statement). Numbers are compared by
    value, so `4243` is the task's `4,243`."""
    example = dict(example_actions(tools)).get(tool)
    if example is None or set(example) != set(args):
        return False
    if not all(isinstance(v, str) and _alike(v, str(example[k])) for k, v in args.items()):
        return False
    own = {float(n) for v in example.values() for n in _NUMBER.findall(str(v))}
    numbers = [
        float(n) for v in args.values() for n in _NUMBER.findall(str(v)) if float(n) not in own
    ]
    if not numbers:
        return False
    held = {n.value for n in parse_numbers(task)}
    absent = not any(n in held for n in numbers)
    years = not numeric and all(n.is_integer() and 1900 <= n <= 2100 for n in numbers)
    return absent or years
