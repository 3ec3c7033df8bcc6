"""The serving core: a Problem with no Reference (a chat request), one configured paradigm and
a backend stack give a Trace and its cost, each step streamed as it is made; no sweep, store
or spec is involved."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import ScriptedBackend
from slmscope.metering.energy import open_meter
from slmscope.models.base import GenerationConfig
from slmscope.models.llamacpp import LlamaCppBackend
from slmscope.models.stack import build_stack
from slmscope.paradigms import get_paradigm, solve
from slmscope.paradigms.trace import Step, Trace
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tasks.record import Problem

CHAT = Problem(
    id="chat-1",
    dataset="chat",
    task_type="qa",
    prompt="Revenue was 1,784 in 2023 and 1,495 in 2022. By how much did it grow?",
    answer=AnswerFormat("number"),
)


def test_a_request_is_answered_on_the_real_model_with_its_steps_streamed(smol_path: Path) -> None:
    async def go() -> tuple[Trace, list[Step], dict[str, object]]:
        backend = LlamaCppBackend(smol_path, n_ctx=2048, n_threads=2)
        try:
            info = await backend.describe()
            meter = open_meter("estimate", in_process=True, same_machine=True)
            stack = build_stack(backend, info, meter, slots=4)
            streamed: list[Step] = []
            paradigm = get_paradigm("single", harness="constrained")
            gen = GenerationConfig(max_tokens=48)
            trace = await solve(CHAT, paradigm, stack.backend, gen, on_step=streamed.append)
            return trace, streamed, stack.counters()
        finally:
            await backend.aclose()

    trace, streamed, counters = asyncio.run(go())
    assert streamed == list(trace.steps) and streamed  # streamed in the order recorded
    cost = trace.cost()
    assert cost.calls == len(trace.steps) and cost.prompt_tokens > 0
    assert cost.total_tokens == sum(s.usage.total_tokens for s in trace.steps if s.usage)
    assert cost.energy.method == "estimate" and (cost.energy.joules or 0) > 0
    # The embedded backend has no parallel slots: the stack holds it to one call at a time.
    assert counters["concurrency"] == {"slots": 1, "peak": 1}


def test_a_team_streams_specialist_steps_before_the_hand_off_that_made_them() -> None:
    hand = '<think>t</think><action>{"tool": "quant_agent", "input": {"task": "subtract"}}</action>'
    backend = ScriptedBackend(
        [
            hand,
            '<think>t</think><action>{"tool": "calculator", "input": {"expression": "1784-1495"}}'
            "</action>",
            "<think>t</think><final_answer>289</final_answer>",
            "<think>t</think><final_answer>289</final_answer>",
        ]
    )
    streamed: list[Step] = []
    team = get_paradigm("multi", harness="repair")
    trace = asyncio.run(solve(CHAT, team, backend, on_step=streamed.append))
    assert trace.outcome == "ok" and trace.final_answer == "289"
    assert [s.agent for s in trace.steps] == [
        "quant_agent",
        "quant_agent",
        "supervisor",
        "supervisor",
    ]
    assert streamed == list(trace.steps)
    assert trace.steps[0].tool == "calculator" and trace.steps[0].observation == "289"
    assert trace.steps[2].tool == "quant_agent" and "289" in (trace.steps[2].observation or "")
