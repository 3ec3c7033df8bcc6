"""One tool call of the ReAct loop: run it under its time limit, or hand the task to a
specialist (a HandOff runs without the tool time limit: its own turns, budgets and backend
timeouts bound it), and say what came of it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from slmscope.paradigms.loop_records import AgentLimits, FailureNames, HandOff
from slmscope.paradigms.protocol import Action
from slmscope.paradigms.trace import Outcome, Step
from slmscope.tools.base import Tool, ToolError

Ran = tuple[str, str | None, tuple[Outcome, str], tuple[Step, ...]]


async def run_tool(
    tools: Mapping[str, Tool], limits: AgentLimits, names: FailureNames, action: Action
) -> Ran:
    """(observation, step error, failure, a hand-off's steps) of one tool call; StopLoop
    passes through."""
    tool = tools.get(action.tool)
    if tool is None:
        observation = f"error: unknown tool {action.tool!r}; available: {', '.join(tools)}"
        return observation, "unknown_tool", (names.unknown_tool, observation), ()
    if isinstance(tool, HandOff):
        handed = await tool.hand_off(action.input)
        said = handed.text[: limits.max_observation_chars]  # as any observation
        if handed.failed:  # a specialist that never started was not reached
            error = "tool_error" if handed.steps else "handoff_refused"
            return f"error: {said}", error, ("tool_error", handed.text), handed.steps
        return said, None, ("max_steps", ""), handed.steps
    try:
        result = await asyncio.wait_for(tool.run(action.input), limits.tool_timeout_s)
    except ToolError as err:
        return f"error: {err}", "tool_error", ("tool_error", str(err)), ()
    except TimeoutError:
        return "error: the tool took too long", "tool_error", ("tool_error", "timed out"), ()
    return result[: limits.max_observation_chars], None, ("max_steps", ""), ()
