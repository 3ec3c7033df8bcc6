"""What an agent is told: its tools, the protocol and a worked example.

Small models copy a prompt's example word for word, so the worked example is about a problem
unlike any task here (umbrella sales), uses a tool the agent really has, and shows both a tool
turn and a direct final answer. `example_actions` lists the example's actions, so the loop can
record an agent that copies one instead of working on its own task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from slmscope.tools.base import Tool

ToolMode = Literal["tags", "native"]
TOOL_MODES: tuple[str, ...] = ToolMode.__args__  # type: ignore[attr-defined]

EXAMPLE_TASK = (
    "A shop sold 40 umbrellas on Monday and 55 on Tuesday. By what percent did sales rise?"
)
EXAMPLE_ANSWER = "37.5"
# One example input per tool the loop knows; a specialist (a tool taking "task") gets a request.
_EXAMPLE_INPUTS: dict[str, dict[str, str]] = {
    "calculator": {"expression": "growth(40, 55)"},
    "python": {"code": "print((55 - 40) / 40 * 100)"},
    "lookup": {"row": "Umbrellas", "column": "Tuesday"},
    "knowledge_search": {"query": "percent change formula"},
}
_EXAMPLE_REQUEST = {"task": "Compute the percent rise from 40 to 55 umbrellas."}


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


def _example_tool(tools: Mapping[str, Tool]) -> str:
    """The tool the example uses: one that can compute, else the first the agent has."""
    for name in ("calculator", "python", *tools):
        if name in tools:
            return name
    raise ValueError("an agent needs at least one tool")


def example_actions(tools: Mapping[str, Tool]) -> list[tuple[str, dict[str, Any]]]:
    """The (tool, input) pairs the prompt shows; an agent that sends one of them is copying."""
    return [(name, _example_input(name, tool)) for name, tool in tools.items()]


def worked_example(tools: Mapping[str, Tool]) -> str:
    name = _example_tool(tools)
    action = json.dumps({"tool": name, "input": _example_input(name, tools[name])})
    return (
        f"Example, on a different task ({EXAMPLE_TASK}):\n"
        f"<think>I need the percent change from 40 to 55.</think><action>{action}</action>\n"
        f"<observation>{EXAMPLE_ANSWER}</observation>\n"
        f"<think>Sales rose by 37.5 percent.</think><final_answer>{EXAMPLE_ANSWER}"
        "</final_answer>\n"
        "When you can answer without a tool, answer at once, for example:\n"
        "<think>No tool is needed.</think><final_answer>blue</final_answer>\n"
        "Work on your own task, not on the example."
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
