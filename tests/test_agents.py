"""Agent control flow with a scripted backend: each outcome of the taxonomy provoked on purpose.
(The real models run the same paradigms in test_run.py.)"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from conftest import ScriptedBackend
from slmscope.models.base import BackendTimeout, BackendUnavailable, GenerationConfig
from slmscope.paradigms import get_paradigm
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent, Specialist, TeamLimits, load_roster
from slmscope.paradigms.single_agent import SingleAgent
from slmscope.paradigms.trace import Trace
from slmscope.tasks.builtin import SUITE

QA = SUITE["builtin:table_qa"]()[0]  # a numeric question over a table
SENT = SUITE["builtin:sentiment"]()[0]  # gold: positive


def act(tool: str, **args: object) -> str:
    return f"<think>step</think><action>{json.dumps({'tool': tool, 'input': args})}</action>"


def answer(text: str) -> str:
    return f"<think>done</think><final_answer>{text}</final_answer>"


def run(paradigm: object, task: object, *replies: object) -> tuple[Trace, ScriptedBackend]:
    backend = ScriptedBackend(list(replies))  # type: ignore[arg-type]
    trace = asyncio.run(paradigm.solve(task.problem, backend, GenerationConfig()))  # type: ignore[attr-defined]
    return trace, backend


def test_single_agent_uses_a_tool_then_answers() -> None:
    trace, backend = run(
        SingleAgent(), QA, act("calculator", expression="growth(100, 125)"), answer(QA.gold)
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
    trace, _ = run(SingleAgent(), QA, act("lookup", row="Revenue", column="2021"), answer(QA.gold))
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
    trace, _ = run(SingleAgent(), SENT, *[answer("it depends")] * 3)
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 3


def test_context_guard_ends_cleanly_instead_of_overflowing() -> None:
    agent = SingleAgent(AgentLimits(context_window=200, max_tokens_per_turn=100))
    trace, backend = run(agent, QA)
    assert trace.outcome == "context_overflow" and backend.calls == []


def test_token_budget_ends_the_loop() -> None:
    agent = SingleAgent(AgentLimits(token_budget=20))  # the scripted call costs 15 tokens
    trace, _ = run(
        agent, SENT, act("calculator", expression="1+1"), act("calculator", expression="2+2")
    )
    assert trace.outcome == "max_steps" and "budget" in (trace.error or "")


def test_dead_backend_stops_the_agent() -> None:
    with pytest.raises(BackendUnavailable):
        run(SingleAgent(), SENT, BackendUnavailable("gone"))


def test_multi_agent_routes_to_a_specialist_and_assembles() -> None:
    trace, _ = run(
        MultiAgent(),
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
        MultiAgent(),
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
    assert refused.error == "tool_error" and '{"task": "what to do"}' in (refused.observation or "")


def test_the_supervisor_prompt_example_uses_its_own_tools() -> None:
    _, backend = run(MultiAgent(), SENT, answer("positive"))
    system = backend.calls[0][0]["content"]
    example = system.split("Example, on a different task")[1]
    assert '"tool": "knowledge_agent"' in example and '"task"' in example and "umbrella" in example
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
    trace, _ = run(get_paradigm("multi+fallback"), SENT, answer("negative"))
    assert trace.agent_outcome == "ok" and trace.final_answer == "negative"  # no fallback needed


def test_roster_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("- name: analyst\n  role: You analyse.\n  tools: [calculator]\n")
    roster = load_roster(path)
    assert roster == (Specialist("analyst", "You analyse.", ("calculator",)),)
    trace, _ = run(
        MultiAgent(roster=roster),
        SENT,
        act("analyst", task="x"),
        answer("positive"),
        answer("positive"),
    )
    assert trace.outcome == "ok" and trace.steps[0].agent == "analyst"
    path.write_text("- name: analyst\n  role: r\n  tools: [web]\n")
    with pytest.raises(ValueError, match=r"team\.yaml: specialist 'analyst': unknown tool"):
        load_roster(path)


# --- harnesses -------------------------------------------------------------------------------


def test_repair_quotes_an_unreadable_turn_and_the_model_fixes_it() -> None:
    said = "<think>hmm</think> The tone is clearly negative"
    trace, backend = run(SingleAgent(), SENT, said, answer("negative"))
    assert trace.outcome == "ok" and trace.final_answer == "negative"
    first, second = trace.steps
    assert (first.error, first.repair, second.repair) == ("no_action_or_answer", False, True)
    repair = backend.calls[1][-1]["content"]
    assert (
        'If "The tone is clearly negative" is your answer, write '
        "<final_answer>The tone is clearly negative</final_answer>" in repair
    )
    assert "Not understood" not in repair
    # Under strict the same reply is a failure, told back as "not understood".
    strict, backend = run(SingleAgent(harness="strict"), SENT, said, *["negative"] * 4)
    assert strict.outcome == "no_final_answer" and len(strict.steps) == 5
    assert "Not understood" in backend.calls[1][-1]["content"]


@pytest.mark.parametrize(
    ("task", "reply", "answer_read"),
    [
        (SENT, "negative", "negative"),
        (SENT, "<think>easy</think>\nNegative.", "negative"),
        (SENT, "final_answer: final_answer: negative", "negative"),
        (SENT, "Thinking...\n**Final Answer:** neutral", "neutral"),
        (QA, "25", None),  # QA reads numbers: 25 is read, then scored against the gold
    ],
)
def test_repair_reads_an_untagged_answer_as_the_base_model_would(
    task: object, reply: str, answer_read: str | None
) -> None:
    trace, _ = run(SingleAgent(), task, reply)
    assert trace.outcome == "ok" and len(trace.steps) == 1
    assert trace.steps[0].error == "untagged_answer"
    if answer_read is not None:
        assert trace.final_answer == answer_read
    strict, _ = run(SingleAgent(harness="strict"), task, *[reply] * 5)
    assert strict.outcome == "no_final_answer"  # the study's protocol: tags or nothing


def test_repair_does_not_read_a_reply_that_is_more_than_an_answer() -> None:
    for reply in ("positive or negative", "I need to look at the table first", "25 or 30"):
        replies = (reply, f"{reply}, I think", f"{reply}, sure")  # never the same twice
        trace, backend = run(SingleAgent(AgentLimits(max_turns=1)), QA, *replies)
        assert trace.outcome == "no_final_answer", reply
        assert "is your answer" in backend.calls[1][-1]["content"]


def test_a_reply_repeated_after_its_repair_is_read_as_base_reads_it() -> None:
    said = "I think the tone is clearly negative here"
    trace, _ = run(SingleAgent(), SENT, said, said)
    assert (trace.outcome, trace.final_answer) == ("ok", "negative")
    assert [(s.error, s.repair) for s in trace.steps] == [
        ("no_action_or_answer", False),
        ("untagged_answer", True),
    ]
    # Only the very reply the repair quoted: another one gets the next repair.
    trace, _ = run(SingleAgent(AgentLimits(max_turns=1)), SENT, said, said + "!", said + "!")
    assert trace.outcome == "ok" and len(trace.steps) == 3
    trace, _ = run(SingleAgent(AgentLimits(max_turns=1)), SENT, said, "maybe", "maybe later")
    assert trace.outcome == "no_final_answer"
    # What base cannot read either stays unread, and strict never reads an untagged reply.
    trace, _ = run(SingleAgent(AgentLimits(max_turns=1)), SENT, *["no idea"] * 3)
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 3
    strict, _ = run(SingleAgent(harness="strict"), SENT, *[said] * 5)
    assert strict.outcome == "no_final_answer"


NER = SUITE["builtin:ner"]()[0]


def test_repair_reads_untagged_entity_lines_and_nothing_less() -> None:
    lines = "\n".join(NER.gold.splitlines())
    trace, _ = run(SingleAgent(), NER, f"<think>found them</think>\n{lines}")
    assert (trace.outcome, trace.final_answer) == ("ok", lines)
    assert trace.steps[0].error == "untagged_answer"
    trace, _ = run(SingleAgent(AgentLimits(max_turns=1)), NER, f"Entities:\n{lines}", "no", "no")
    assert trace.outcome == "no_final_answer"  # a line that is not an entity: not read


@pytest.mark.parametrize("placeholder", ["ANSWER", "...", ").", "maybe"])
def test_a_final_answer_not_in_the_tasks_format_is_sent_back_with_the_format(
    placeholder: str,
) -> None:
    trace, backend = run(SingleAgent(), SENT, answer(placeholder), answer("positive"))
    assert trace.outcome == "ok" and trace.final_answer == "positive"
    assert [(s.error, s.repair) for s in trace.steps] == [
        ("unreadable_answer", False),
        (None, True),
    ]
    told = backend.calls[1][-1]["content"]
    assert f'"{placeholder}" is not an answer' in told and "exactly one of: " in told
    strict, _ = run(SingleAgent(harness="strict"), SENT, answer(placeholder))
    assert strict.outcome == "no_final_answer" and len(strict.steps) == 1


def test_repair_messages_hold_no_placeholder_or_written_out_tag_to_copy() -> None:
    again = act("calculator", expression="1+1")
    copy = act("calculator", expression="growth(40, 55)")
    replies = ["", again, again, copy, answer("..."), "<action>oops</action>", "x " * 150]
    agent = SingleAgent(AgentLimits(max_turns=2, max_repairs=9))
    trace, backend = run(agent, SENT, *replies, answer("positive"))
    told = [call[-1]["content"].removeprefix("<observation>").removesuffix("</observation>")
            for call in backend.calls[1:]]  # fmt: skip
    assert len(told) == len(replies) and trace.outcome == "ok"
    assert sum(s.repair for s in trace.steps) == 6
    quoted = " ".join(replies[-1].split())  # the long reply is quoted back whole
    for note in told:
        assert not {"ANSWER", "NAME", "...", "{...}"} & set(note.split()), note
        # A tag written out is empty, or holds the model's own reply.
        for held in re.findall(r"<(final_answer|action)>(.*?)</\1>", note):
            assert held[1] in ("", quoted), note


def test_repairs_are_bounded_and_each_adds_a_call() -> None:
    agent = SingleAgent(AgentLimits(max_turns=5, max_repairs=2))
    trace, backend = run(agent, SENT, *["no tags here, sorry"] * 7)
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 7  # 5 turns + 2 repairs
    assert [s.repair for s in trace.steps] == [False, True, True, False, False, False, False]
    assert "Not understood" in backend.calls[3][-1]["content"]  # past the bound: plain refusal


def test_repair_says_when_the_next_turn_is_the_last() -> None:
    agent = SingleAgent(AgentLimits(max_turns=3))
    trace, backend = run(
        agent,
        QA,
        act("calculator", expression="1+1"),
        act("calculator", expression="2+2"),
        answer(QA.gold),
    )
    assert trace.outcome == "ok"
    assert "last" not in backend.calls[1][-1]["content"]
    assert backend.calls[2][-1]["content"] == (
        "<observation>4 Your next turn is your last: give your final answer then.</observation>"
    )


def test_a_copied_example_action_is_recorded_and_under_repair_not_run() -> None:
    copy = act("calculator", expression="growth(40, 55)")  # the prompt's own example
    trace, _ = run(SingleAgent(), SENT, copy, answer("positive"))
    assert trace.outcome == "ok"
    assert trace.steps[0].error == "example_copy" and "umbrella" in (
        trace.steps[0].observation or ""
    )
    assert trace.steps[1].repair
    trace, _ = run(SingleAgent(harness="strict"), SENT, copy, answer("positive"))
    assert (trace.steps[0].error, trace.steps[0].observation) == ("example_copy", "37.5")


def test_a_repeated_action_under_repair_gets_its_result_and_a_call_to_answer() -> None:
    again = act("calculator", expression="1+1")
    trace, backend = run(SingleAgent(), QA, again, again, answer(QA.gold))
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    assert [(s.error, s.repair) for s in trace.steps] == [
        (None, False),
        ("repeated_action", False),
        (None, True),
    ]
    told = backend.calls[2][-1]["content"]
    assert "already ran exactly this action. It returned: 2" in told and "final answer" in told
    # Past the bound of repairs, a repeat ends the sample as before.
    bounded = SingleAgent(AgentLimits(max_repairs=0))
    trace, _ = run(bounded, QA, again, again)
    assert trace.outcome == "max_steps" and "repeated" in (trace.error or "")
    trace, _ = run(SingleAgent(harness="strict"), QA, again, again)
    assert trace.outcome == "max_steps" and len(trace.steps) == 2


def test_a_repeated_hand_off_under_repair_makes_the_specialists_answer_the_teams() -> None:
    replies = (
        act("nlp_agent", task="classify"),
        answer("positive"),  # the specialist
        act("nlp_agent", task="classify"),  # the same hand-off again
    )
    trace, _ = run(MultiAgent(), SENT, *replies)
    assert trace.outcome == "ok" and trace.final_answer == "positive"
    assert [(s.agent, s.error) for s in trace.steps] == [
        ("nlp_agent", None),
        ("supervisor", None),
        ("supervisor", "repeated_action"),
    ]
    trace, _ = run(MultiAgent(harness="strict"), SENT, *replies)
    assert trace.outcome == "delegation_loop" and trace.final_answer is None


def test_the_hand_off_limit_keeps_every_step_in_order() -> None:
    limited = MultiAgent(TeamLimits(max_handoffs=1))
    trace, _ = run(
        limited, SENT, act("nlp_agent", task="a"), answer("positive"), act("quant_agent", task="b")
    )
    assert trace.outcome == "delegation_loop" and "hand-offs" in (trace.error or "")
    assert [(s.agent, s.tool, s.error) for s in trace.steps] == [
        ("nlp_agent", None, None),
        ("supervisor", "nlp_agent", None),
        ("supervisor", "quant_agent", "delegation_loop"),
    ]
