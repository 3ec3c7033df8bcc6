"""Agents that act: the `act` harness holds an agent to a tool before it answers, tool use is
counted per sample and stored, and what the prompt shows cannot be copied unnoticed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from agent_script import QA, SENT, act, answer, run
from conftest import ScriptedBackend
from gbnf_check import accepts
from slmscope.models.base import Abilities
from slmscope.paradigms import acts_of, get_paradigm
from slmscope.paradigms.agent_prompts import (
    EXAMPLE_ANSWER,
    EXAMPLE_THOUGHTS,
    agent_prompt,
    copied_shape,
    copied_thought,
)
from slmscope.paradigms.harness import HARNESSES, harness_named
from slmscope.paradigms.multi_agent import DEFAULT_ROSTER, SUPERVISOR_ROLE, Delegate
from slmscope.paradigms.single_agent import SINGLE_ROLE, SingleAgent, task_tools
from slmscope.tools.knowledge import KnowledgeSearch


def test_under_act_a_first_turn_answer_is_sent_back_and_the_grammar_admits_only_an_action(
    smol_path: Path,
) -> None:
    calc = act("calculator", expression="1784 - 1495")
    trace, backend = run(SingleAgent(harness="act"), QA, answer("1,784"), calc, answer("289"))
    assert trace.outcome == "ok" and trace.final_answer == "289"
    assert trace.steps[0].error == "answer_before_action" and trace.steps[0].repair is False
    assert "first call one of your tools" in backend.calls[1][-1]["content"]
    assert trace.steps[1].tool == "calculator" and trace.steps[1].observation == "289"
    first, after = (o["constraint"].grammar for o in (backend.options[0], backend.options[2]))
    assert accepts(first, calc, smol_path) and not accepts(first, answer("289"), smol_path)
    assert accepts(after, answer("289"), smol_path)  # after an observation: as `constrained`


def test_under_act_the_supervisor_must_hand_off_and_the_specialist_must_act() -> None:
    replies = [
        act("quant_agent", task="Subtract 1,495 from 1,784."),
        answer("289"),  # the specialist answering at once: sent back
        act("calculator", expression="1,784 - 1,495"),
        answer("289"),
        answer("289"),
    ]
    trace, _ = run(get_paradigm("multi", harness="act"), QA, *replies)
    assert trace.outcome == "ok" and trace.final_answer == "289"
    assert [(s.agent, s.error) for s in trace.steps] == [
        ("quant_agent", "answer_before_action"),
        ("quant_agent", None),
        ("quant_agent", None),
        ("supervisor", None),
        ("supervisor", None),
    ]
    acts = acts_of(trace)
    assert (acts.tool_calls, acts.handoffs, acts.tool_errors, acts.acted) == (1, 1, 0, True)
    assert acts.by_tool == {"calculator": 1, "quant_agent": 1} and acts.observed
    assert acts.tools_offered == len(DEFAULT_ROSTER)


def test_native_act_asks_for_a_required_tool_call_until_a_tool_has_run() -> None:
    agent = get_paradigm("single", harness="act", mode="native")
    harness = harness_named("act")
    assert (
        harness.needs_required_tools() and not harness_named("constrained").needs_required_tools()
    )
    backend = ScriptedBackend([answer("positive")] * 3)
    import asyncio

    from slmscope.models.base import GenerationConfig

    asyncio.run(agent.solve(SENT.problem, backend, GenerationConfig()))
    assert [g.tool_choice for g in backend.gens][:1] == ["required"]


def test_a_sample_that_acts_has_its_calls_errors_and_copies_counted() -> None:
    replies = [
        act("calculator", expression="difference(1784, 1495)"),  # a tool error
        act("lookup", row="Revenue", column="2021"),
        f"<think>{EXAMPLE_THOUGHTS[1]}</think><final_answer>{QA.gold}</final_answer>",
    ]
    trace, _ = run(SingleAgent(harness="constrained"), QA, *replies)
    acts = acts_of(trace)
    assert (acts.tool_calls, acts.tool_errors, acts.handoffs) == (2, 1, 0)
    assert acts.copies == 1 and acts.acted  # the copied thought
    assert acts.by_tool == {"calculator": 1, "lookup": 1}
    said, _ = run(SingleAgent(harness="constrained"), SENT, answer("positive"))
    none = acts_of(said)
    assert (none.acted, none.tool_calls, none.observed, none.copies) == (False, 0, False, 0)
    assert none.tools_offered == len(task_tools(SENT.problem, KnowledgeSearch()))
    base, _ = run(get_paradigm("base"), SENT, answer("positive"))
    assert acts_of(base).tools_offered == 0


def test_an_answer_drawn_on_an_observation_is_told_from_one_that_is_not() -> None:
    calc = act("calculator", expression="1784 - 1495")
    drawn, _ = run(SingleAgent(harness="constrained"), QA, calc, answer("289"))
    guessed, _ = run(SingleAgent(harness="constrained"), QA, calc, answer("1784"))
    assert acts_of(drawn).observed and not acts_of(guessed).observed


def test_the_examples_shape_with_the_tasks_years_is_a_copy() -> None:
    tools = task_tools(SENT.problem, KnowledgeSearch())
    task = "Did the central bank's stance in 2023 differ from 2024?"
    years = {"expression": "(2024 - 2023) / 2023 * 100"}
    assert copied_shape("calculator", years, tools, task, numeric=False)
    table = "By what percentage did revenue change from 2022 to 2023? Revenue 4,243 and 3,452"
    change = {"expression": "(4243 - 3452) / 3452 * 100"}  # the task's own numbers: work
    assert not copied_shape("calculator", change, tools, table, numeric=True)
    values = {"expression": "(2045 - 1957) / 1957 * 100"}  # table values that look like years
    assert not copied_shape("calculator", values, tools, "Sales 2,045 and 1,957", numeric=True)
    team = {s.name: Delegate(s, {}, SENT.problem, None) for s in DEFAULT_ROSTER}  # type: ignore[arg-type]
    request = {"task": "Find the percent rise in 2024 sales."}
    assert copied_shape("quant_agent", request, team, SENT.problem.text(), numeric=False)
    own = {"task": "What is the sentiment of this sentence?"}
    assert not copied_shape("quant_agent", own, team, SENT.problem.text(), numeric=False)
    trace, _ = run(
        SingleAgent(harness="constrained"),
        SENT,
        act("calculator", expression="(2024 - 2023) / 2023 * 100"),
        answer("positive"),
    )
    acts = acts_of(trace)
    assert trace.steps[0].copied and acts.copies == 1 and not acts.acted


def _prompts() -> list[str]:
    tools = task_tools(QA.problem, KnowledgeSearch())
    team = {s.name: Delegate(s, {}, QA.problem, None) for s in DEFAULT_ROSTER}  # type: ignore[arg-type]
    roles = [(SINGLE_ROLE, tools), (SUPERVISOR_ROLE, team)]
    roles += [(s.role, {t: tools[t] for t in s.tools if t in tools}) for s in DEFAULT_ROSTER]
    return [agent_prompt(role, given, "tags") for role, given in roles]


def test_no_agent_prompt_holds_text_the_copy_detector_would_miss() -> None:
    """Every thought and answer a prompt shows is counted if the model repeats it, and no
    prompt shows an answer given without a tool (the shortcut a 0.5B model took)."""
    for prompt in _prompts():
        thoughts = [t for t in re.findall(r"<think>(.*?)</think>", prompt) if t]
        answers = re.findall(r"<final_answer>(.*?)</final_answer>", prompt)
        assert thoughts and all(copied_thought(t) for t in thoughts), prompt
        assert all(copied_thought(t.upper() + "!") for t in thoughts)
        assert set(answers) <= {EXAMPLE_ANSWER, ""}, prompt
        assert "No tool is needed" not in prompt and "blue" not in prompt
        before_answer = prompt.split("<final_answer>")[0]
        assert "<action>" in before_answer  # the example's answer follows its tool turn
    assert not copied_thought("I need the difference between 1,784 and 1,495.")


@pytest.mark.parametrize("name", list(HARNESSES))
def test_every_harness_is_recorded_and_act_is_the_default(name: str) -> None:
    from slmscope.paradigms import DEFAULT_HARNESS

    assert DEFAULT_HARNESS == "act"
    assert get_paradigm("single", harness=name).harness is HARNESSES[name]


def test_tool_use_is_stored_with_each_result(tmp_path: Path) -> None:
    from slmscope import analysis
    from slmscope.models.catalog import CATALOG
    from slmscope.runs.spec import RunSpec
    from slmscope.runs.store import Store
    from sweeps import execute_spec

    spec = RunSpec(models=("scripted",), paradigms=("base", "single"), tasks=("x",))
    cards = {"scripted": CATALOG["smollm2-135m-instruct"]}
    calc = act("calculator", expression="1784 - 1495")
    script = [answer("289"), calc, answer("289")]  # base, then the agent (acting first)
    store = Store(tmp_path / "run")
    backend = ScriptedBackend(script, abilities=Abilities(grammar=True, grammar_checked=True))
    execute_spec(spec, cards, [QA], store, backends={"scripted": backend})
    store.close()
    frame = analysis.load(tmp_path / "run").set_index("paradigm")
    agent, base = frame.loc["single"], frame.loc["base"]
    assert agent["harness"] == "act" and bool(agent["acted"]) and bool(agent["observed"])
    assert (agent["tool_calls"], agent["tool_errors"], agent["handoffs"]) == (1, 0, 0)
    assert json.loads(agent["tools_used"]) == {"calculator": 1} and agent["tools_offered"] >= 3
    assert (base["tools_offered"], bool(base["acted"])) == (0, False)


def test_the_specialists_share_a_budget_of_their_own_and_their_steps_are_kept() -> None:
    from slmscope.paradigms.multi_agent import MultiAgent, TeamLimits

    team = MultiAgent(TeamLimits(specialist_budget=40), harness="constrained")  # 15 per call
    replies = [
        act("quant_agent", task="Subtract 1,495 from 1,784."),
        act("calculator", expression="1,784 - 1,495"),
        answer("289"),
        act("knowledge_agent", task="Is 289 a difference?"),  # 30 of 40 spent: 10 left
        act("knowledge_search", query="difference"),  # its loop ends at its budget
        answer("289"),
    ]
    trace, _ = run(team, QA, *replies)
    agents = [s.agent for s in trace.steps]
    assert agents[:3] == ["quant_agent", "quant_agent", "supervisor"]
    assert agents[3] == "knowledge_agent" and trace.steps[4].agent == "supervisor"
    assert "could not finish (max_steps: token budget of 10 spent)" in (
        trace.steps[4].observation or ""
    )
    assert acts_of(trace).handoffs == 2 and trace.final_answer == "289"


def test_the_act_hold_lasts_until_a_real_tool_has_run() -> None:
    """A copied shape or a hand-off that reached no specialist is not acting: the answer
    after it is still sent back, and the sample is not counted as acted."""
    copy = act("calculator", expression="(2024 - 2023) / 2023 * 100")
    trace, _ = run(SingleAgent(harness="act"), SENT, copy, answer("positive"),
                   act("lookup", query="profits"), answer("positive"))  # fmt: skip
    errors = [s.error for s in trace.steps]
    assert errors == [None, "answer_before_action", None, None] and trace.steps[0].copied
    assert acts_of(trace).acted and acts_of(trace).copies == 1
    refused = [act("quant_agent", task=""), *[answer("positive")] * 3]  # held while repairs last
    trace, _ = run(get_paradigm("multi", harness="act"), SENT, *refused)
    assert [s.error for s in trace.steps][:2] == ["handoff_refused", "answer_before_action"]
    assert not acts_of(trace).acted and acts_of(trace).handoffs == 0


def test_a_reply_the_token_budget_cut_is_told_so_not_taken_as_an_answer() -> None:
    from conftest import tool_reply

    cut = dataclasses.replace(
        tool_reply(text="<think>t</think><final_answer>The change was 28"), finish_reason="length"
    )
    trace, backend = run(SingleAgent(harness="constrained"), QA, cut, answer("289"))
    assert trace.steps[0].error == "cut_off" and trace.final_answer == "289"
    assert "cut off at 256 tokens" in backend.calls[1][-1]["content"]
    assert [s.cut for s in trace.steps] == ["reply", None]
    counted = acts_of(trace)
    assert (counted.cut_turns, counted.cut_actions, counted.closed_turns) == (1, 0, 0)


def test_an_action_the_budget_cut_is_told_its_input_was_too_long_and_not_cut_again() -> None:
    """A 1.5B agent wrote a pandas program for five prices; the budget cut it inside its input,
    and greedy decoding wrote the same reply six turns running. The note now names the input,
    and the same cut reply a second time leaves only the final answer to the next turn."""
    from conftest import tool_reply

    text = '<think>t</think><action>{"tool": "python", "input": {"code": "import pandas as pd\\n'
    cut = dataclasses.replace(tool_reply(text=text), finish_reason="length")
    trace, backend = run(SingleAgent(harness="act"), QA, cut, cut, answer("289"))
    assert [s.error for s in trace.steps] == ["cut_off", "cut_off", None]
    assert "before its input ended" in backend.calls[1][-1]["content"]
    phases = [o["constraint"].name.split(":")[0] for o in backend.options]
    assert phases == ["agent-act", "agent-act", "agent-final"], phases
    assert trace.final_answer == "289" and len(backend.calls) == 3
    assert [s.cut for s in trace.steps] == ["action", "action", None]
    sent = [m["content"] for m in backend.calls[2]]  # the answer turn: the cut reply sent once
    assert sum(text in c for c in sent) == 1 and len(sent) == len(backend.calls[1])
    assert "cut off again" in sent[-1] and "before its input ended" in sent[-1]
    counted = acts_of(trace)
    assert (counted.cut_turns, counted.cut_actions, counted.repeated_cuts) == (2, 2, 1)
    other = dataclasses.replace(tool_reply(text=text + "x = 1"), finish_reason="length")
    calc = act("calculator", expression="1784 - 1495")
    trace, backend = run(SingleAgent(harness="act"), QA, cut, other, calc, answer("289"))
    phases = [o["constraint"].name.split(":")[0] for o in backend.options]
    assert phases[:3] == ["agent-act"] * 3 and acts_of(trace).acted  # a new reply: no answer yet
    counted = acts_of(trace)
    assert (counted.cut_turns, counted.cut_actions, counted.repeated_cuts) == (2, 2, 0)


def test_an_input_the_grammar_closed_runs_and_the_agent_is_told_it_was_cut() -> None:
    """A query the budget was about to cut, closed by the grammar, runs as far as it got; the
    observation says so, and the step counts as a tool call that ran."""
    from conftest import tool_reply

    call = '{"tool": "calculator", "input": {"expression": "1784 - 1495"}}'
    text = f"<think>t</think><action>{call}</action>"
    closed = dataclasses.replace(tool_reply(text=text), raw_usage={"grammar_closed": "input"})
    trace, backend = run(SingleAgent(harness="act"), QA, closed, answer("289"))
    first = trace.steps[0]
    assert first.tool == "calculator" and first.error is None and first.observation is not None
    assert first.observation.startswith("289") and "ran as far as it got" in first.observation
    assert "ran as far as it got" in backend.calls[1][-1]["content"]
    assert acts_of(trace).acted and trace.final_answer == "289"
    assert first.cut == "input" and acts_of(trace).closed_turns == 1
    assert acts_of(trace).cut_turns == 0
    plain = tool_reply(text=text)
    trace, backend = run(SingleAgent(harness="act"), QA, plain, answer("289"))
    assert "ran as far as it got" not in (trace.steps[0].observation or "")


def test_how_the_budget_ended_a_turn() -> None:
    from slmscope.paradigms.harness import budget_end

    assert budget_end('<think>t</think><action>{"tool": "python"', "length", None) == "action"
    assert budget_end("<think>a thought that runs on", "length", None) == "reply"
    assert budget_end("<final_answer>28", "length", None) == "reply"
    assert budget_end("<final_answer>28</final_answer>", "length", None) is None  # just in time
    assert budget_end("<final_answer>28</final_answer>", "stop", None) is None
    assert budget_end("<action>{}</action>", "stop", "input") == "input"
