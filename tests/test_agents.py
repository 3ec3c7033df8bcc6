"""Agent control flow with a scripted backend: each outcome of the taxonomy provoked on purpose.
(The real models run the same paradigms in test_run.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent_script import QA, SENT, act, answer, run
from slmscope.models.base import BackendTimeout, BackendUnavailable
from slmscope.paradigms import get_paradigm
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent, Specialist, TeamLimits, load_roster
from slmscope.paradigms.single_agent import SingleAgent


def test_single_agent_uses_a_tool_then_answers() -> None:
    trace, backend = run(
        SingleAgent(harness="constrained"),
        QA,
        act("calculator", expression="growth(100, 125)"),
        answer(QA.gold),
    )
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    first, second = trace.steps
    assert (first.agent, first.turn, first.tool, first.observation) == (
        "single",
        1,
        "calculator",
        "25",
    )
    assert "<observation>25</observation>" in backend.calls[1][-1]["content"]
    assert "calculator" in backend.calls[0][0]["content"]  # the tools are described
    assert second.tool is None and second.turn == 2


def test_lookup_reads_the_task_table() -> None:
    trace, _ = run(
        SingleAgent(harness="constrained"),
        QA,
        act("lookup", row="Revenue", column="2021"),
        answer(QA.gold),
    )
    assert trace.steps[0].observation and trace.steps[0].observation[0].isdigit()


@pytest.mark.parametrize(
    ("replies", "outcome"),
    [
        (["I think it is positive."] * 5, "no_final_answer"),
        (["<action>calculator(1+1)</action>"] * 5, "malformed_action"),
        (
            [act("web_search", query="x")] + ["no tags"] * 3 + [act("web_search", query="y")],
            "unknown_tool",
        ),
        ([act("calculator", expression=f"1/{0}+{i}") for i in range(5)], "tool_error"),
        ([act("calculator", expression=f"{i}+1") for i in range(5)], "max_steps"),
        ([act("calculator", expression="1+1")] * 2, "max_steps"),  # repeated action
        ([BackendTimeout("slow")], "timeout"),
    ],
)
def test_single_agent_failures(replies: list[object], outcome: str) -> None:
    trace, _ = run(SingleAgent(harness="strict"), SENT, *replies)
    assert trace.outcome == outcome and trace.final_answer is None
    assert trace.error


def test_a_final_answer_without_a_readable_label_is_no_final_answer() -> None:
    trace, _ = run(SingleAgent(harness="strict"), SENT, answer("it depends"))
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 1
    # Under repair it is sent back twice (the bound of repairs), then fails the same way.
    trace, _ = run(SingleAgent(harness="constrained"), SENT, *[answer("it depends")] * 3)
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 3


def test_context_guard_ends_cleanly_instead_of_overflowing() -> None:
    agent = SingleAgent(
        AgentLimits(context_window=200, max_tokens_per_turn=100), harness="constrained"
    )
    trace, backend = run(agent, QA)
    assert trace.outcome == "context_overflow" and backend.calls == []


def test_token_budget_ends_the_loop() -> None:
    agent = SingleAgent(
        AgentLimits(token_budget=20), harness="constrained"
    )  # the scripted call costs 15 tokens
    trace, _ = run(
        agent, SENT, act("calculator", expression="1+1"), act("calculator", expression="2+2")
    )
    assert trace.outcome == "max_steps" and "budget" in (trace.error or "")


def test_dead_backend_stops_the_agent() -> None:
    with pytest.raises(BackendUnavailable):
        run(SingleAgent(harness="constrained"), SENT, BackendUnavailable("gone"))


def test_multi_agent_routes_to_a_specialist_and_assembles() -> None:
    trace, _ = run(
        MultiAgent(harness="constrained"),
        QA,
        act("quant_agent", task="compute the answer"),  # supervisor
        act("calculator", expression="growth(100, 125)"),  # quant agent
        answer("25"),  # quant agent
        answer(QA.gold),
    )  # supervisor
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    assert [s.agent for s in trace.steps] == [
        "quant_agent",
        "quant_agent",
        "supervisor",
        "supervisor",
    ]
    assert trace.steps[2].tool == "quant_agent"
    assert (trace.steps[2].observation or "").startswith("25\n(from quant_agent) Now give")


def test_a_hand_off_under_another_field_name_still_reaches_the_specialist() -> None:
    trace, backend = run(
        MultiAgent(harness="constrained"),
        SENT,
        act("nlp_agent", sentence="Is this positive?"),  # what small supervisors write
        answer("positive"),  # nlp agent
        act("quant_agent", n=3),  # no text at all: refused, told to the supervisor
        answer("positive"),
    )
    assert trace.outcome == "ok"
    assert [s.agent for s in trace.steps] == ["nlp_agent", "supervisor", "supervisor", "supervisor"]
    assert backend.calls[1][1]["content"].startswith("Is this positive?")  # the request
    refused = trace.steps[2]
    assert refused.error == "handoff_refused" and '{"task": "what to do"}' in (
        refused.observation or ""
    )


def test_the_supervisor_prompt_example_uses_its_own_tools() -> None:
    _, backend = run(MultiAgent(harness="constrained"), SENT, answer("positive"))
    system = backend.calls[0][0]["content"]
    example = system.split("Example, on a different task")[1]
    # The example's percent change goes to the specialist that can compute (the most computing
    # tools), not the first listed; its request holds no numbers a model could run on with.
    assert '"tool": "quant_agent"' in example and "umbrella" in example
    request = json.loads(example.split("<action>")[1].split("</action>")[0])["input"]["task"]
    assert request and not re.search(r"\d", request)
    assert "calculator" not in example
    # The supervisor is told when to ask each specialist; numbers go to the quant agent.
    assert "- quant_agent: Ask it anything with numbers" in system
    # The answer's format is part of the problem, as every paradigm states it.
    user = backend.calls[0][1]["content"]
    assert user.endswith("The final answer is exactly one of: positive, negative, neutral.")
    assert "The final answer is exactly" not in system


def test_multi_agent_routing_failure() -> None:
    strict = MultiAgent(harness="strict")
    trace, _ = run(strict, SENT, *[act("legal_agent", task="help")] * 1, *["no tags"] * 4)
    assert trace.outcome == "no_final_answer"
    trace, _ = run(strict, SENT, *[act(f"agent_{i}", task="help") for i in range(5)])
    assert trace.outcome == "routing_failure"


def test_multi_agent_delegation_loop() -> None:
    trace, _ = run(
        MultiAgent(harness="strict"),
        SENT,
        act("nlp_agent", task="classify"),
        answer("positive"),
        act("nlp_agent", task="classify"),
    )
    assert trace.outcome == "delegation_loop"
    limited = MultiAgent(TeamLimits(max_handoffs=1), harness="strict")
    trace, _ = run(
        limited, SENT, act("nlp_agent", task="a"), answer("positive"), act("nlp_agent", task="b")
    )
    assert trace.outcome == "delegation_loop" and "hand-offs" in (trace.error or "")


def test_a_failing_specialist_is_an_observation_for_the_supervisor() -> None:
    trace, _ = run(
        MultiAgent(harness="strict"),
        SENT,
        act("nlp_agent", task="classify"),
        *["no tags"] * 5,
        answer("positive"),
    )
    assert trace.outcome == "ok"
    supervisor = [s for s in trace.steps if s.agent == "supervisor"]
    assert supervisor[0].error == "tool_error" and "could not finish" in (
        supervisor[0].observation or ""
    )


def test_fallback_answers_with_base_and_keeps_both_costs() -> None:
    fallback = get_paradigm("single+fallback", harness="strict")
    trace, _ = run(fallback, SENT, *["no tags"] * 5, "Positive.")
    assert fallback.name == "single+fallback"
    assert trace.outcome == "ok" and trace.final_answer == "positive"
    assert trace.agent_outcome == "no_final_answer"
    assert [s.agent for s in trace.steps] == ["single"] * 5 + ["base"]
    trace, _ = run(get_paradigm("multi+fallback", harness="constrained"), SENT, answer("negative"))
    assert trace.agent_outcome == "ok" and trace.final_answer == "negative"  # no fallback needed


def test_roster_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("- name: analyst\n  role: You analyse.\n  tools: [calculator]\n")
    roster = load_roster(path)
    assert roster == (Specialist("analyst", "You analyse.", ("calculator",)),)
    trace, _ = run(
        MultiAgent(roster=roster, harness="constrained"),
        SENT,
        act("analyst", task="x"),
        answer("positive"),
        answer("positive"),
    )
    assert trace.outcome == "ok" and trace.steps[0].agent == "analyst"
    path.write_text("- name: analyst\n  role: r\n  tools: [web]\n")
    with pytest.raises(ValueError, match=r"team\.yaml: specialist 'analyst': unknown tool"):
        load_roster(path)


def test_the_example_goes_to_the_specialist_with_computing_tools_whatever_its_name() -> None:
    roster = (
        Specialist("reader", "You read.", ("knowledge_search",)),
        Specialist("numbers", "You count.", ("lookup", "python")),
    )
    _, backend = run(MultiAgent(harness="constrained", roster=roster), SENT, answer("positive"))
    example = backend.calls[0][0]["content"].split("Example, on a different task")[1]
    assert '"tool": "numbers"' in example and '"tool": "reader"' not in example
