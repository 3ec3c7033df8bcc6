"""The multi agent's hand-off at small scale, on the real Qwen2.5-Coder-1.5B: the supervisor's
first turn under `act` is a hand-off, the specialist runs as an agent to its own final answer
(no tool time limit cuts it), its steps are in the trace and in the sample's cost, and its own
tool use is counted."""

from __future__ import annotations

import asyncio

import pytest

from conftest import cached_model
from slmscope.models.base import GenerationConfig
from slmscope.models.llamacpp import LlamaCppBackend
from slmscope.paradigms import acts_of, get_paradigm
from slmscope.paradigms.multi_agent import DEFAULT_ROSTER, TeamLimits
from slmscope.tasks.builtin import SUITE

QWEN_15 = "qwen2.5-coder-1.5b-instruct"


@pytest.mark.model
def test_a_handoff_runs_the_specialist_to_its_end_and_its_steps_are_in_the_trace() -> None:
    backend = LlamaCppBackend(cached_model(QWEN_15), n_ctx=4096)
    agent = get_paradigm("multi", harness="act", limits=TeamLimits(max_turns=3, max_handoffs=2))
    task = SUITE["builtin:table_qa"]()[0]
    trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
    roster = {s.name: s.tools for s in DEFAULT_ROSTER}

    supervisor = [s for s in trace.steps if s.agent == "supervisor"]
    assert supervisor and supervisor[0].handoff and supervisor[0].tool in roster, supervisor
    hand_off, name = supervisor[0], str(supervisor[0].tool)
    assert hand_off.error is None, hand_off  # no timeout, no refusal: the specialist answered

    # The specialist's steps come before the supervisor's step that handed off (they ran
    # inside it): the first is a call on one of its own tools (act), the last its answer.
    end = trace.steps.index(hand_off)
    own = [s for s in trace.steps[:end] if s.agent == name]
    assert len(own) >= 2, [(s.agent, s.tool, s.error) for s in trace.steps]
    assert own[0].tool in roster[name] and own[0].error in (None, "tool_error"), own[0]
    last = own[-1]
    assert last.tool is None and last.error is None, last
    answer = hand_off.observation or ""
    assert answer and all(s.usage is not None for s in own)

    # Its cost is the sample's: the trace's tokens include every specialist call.
    cost = trace.cost()
    tokens = [s.usage.total_tokens for s in (*own, *supervisor) if s.usage is not None]
    assert cost.prompt_tokens + cost.completion_tokens >= sum(tokens) and cost.calls >= len(own)

    acts = acts_of(trace)
    assert acts.acted and acts.handoffs >= 1
    used = acts.by_tool  # per tool and specialist: the specialist's own calls are counted
    assert used.get(name, 0) >= 1 and used.get(str(own[0].tool), 0) >= 1, used
