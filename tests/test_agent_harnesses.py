"""The harnesses on scripted agent replies: what `repair` and `constrained` read, send back and
bound, against `strict`."""

from __future__ import annotations

import re

import pytest

from agent_script import QA, SENT, act, answer, run
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent, TeamLimits
from slmscope.paradigms.single_agent import SingleAgent
from slmscope.tasks.builtin import SUITE

# --- harnesses -------------------------------------------------------------------------------


def test_repair_quotes_an_unreadable_turn_and_the_model_fixes_it() -> None:
    said = "<think>hmm</think> The tone is clearly negative"
    trace, backend = run(SingleAgent(harness="constrained"), SENT, said, answer("negative"))
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
    trace, _ = run(SingleAgent(harness="constrained"), task, reply)
    assert trace.outcome == "ok" and len(trace.steps) == 1
    assert trace.steps[0].error == "untagged_answer"
    if answer_read is not None:
        assert trace.final_answer == answer_read
    strict, _ = run(SingleAgent(harness="strict"), task, *[reply] * 5)
    assert strict.outcome == "no_final_answer"  # the study's protocol: tags or nothing


def test_repair_does_not_read_a_reply_that_is_more_than_an_answer() -> None:
    for reply in ("positive or negative", "I need to look at the table first", "25 or 30"):
        replies = (reply, f"{reply}, I think", f"{reply}, sure")  # never the same twice
        trace, backend = run(
            SingleAgent(AgentLimits(max_turns=1), harness="constrained"), QA, *replies
        )
        assert trace.outcome == "no_final_answer", reply
        assert "is your answer" in backend.calls[1][-1]["content"]


def test_a_reply_repeated_after_its_repair_is_read_as_base_reads_it() -> None:
    said = "I think the tone is clearly negative here"
    trace, _ = run(SingleAgent(harness="constrained"), SENT, said, said)
    assert (trace.outcome, trace.final_answer) == ("ok", "negative")
    assert [(s.error, s.repair) for s in trace.steps] == [
        ("no_action_or_answer", False),
        ("untagged_answer", True),
    ]
    # Only the very reply the repair quoted: another one gets the next repair.
    trace, _ = run(
        SingleAgent(AgentLimits(max_turns=1), harness="constrained"),
        SENT,
        said,
        said + "!",
        said + "!",
    )
    assert trace.outcome == "ok" and len(trace.steps) == 3
    trace, _ = run(
        SingleAgent(AgentLimits(max_turns=1), harness="constrained"),
        SENT,
        said,
        "maybe",
        "maybe later",
    )
    assert trace.outcome == "no_final_answer"
    # What base cannot read either stays unread, and strict never reads an untagged reply.
    trace, _ = run(
        SingleAgent(AgentLimits(max_turns=1), harness="constrained"), SENT, *["no idea"] * 3
    )
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 3
    strict, _ = run(SingleAgent(harness="strict"), SENT, *[said] * 5)
    assert strict.outcome == "no_final_answer"


NER = SUITE["builtin:ner"]()[0]


def test_repair_reads_untagged_entity_lines_and_nothing_less() -> None:
    lines = "\n".join(NER.gold.splitlines())
    trace, _ = run(SingleAgent(harness="constrained"), NER, f"<think>found them</think>\n{lines}")
    assert (trace.outcome, trace.final_answer) == ("ok", lines)
    assert trace.steps[0].error == "untagged_answer"
    trace, _ = run(
        SingleAgent(AgentLimits(max_turns=1), harness="constrained"),
        NER,
        f"Entities:\n{lines}",
        "no",
        "no",
    )
    assert trace.outcome == "no_final_answer"  # a line that is not an entity: not read


@pytest.mark.parametrize("placeholder", ["ANSWER", "...", ").", "maybe"])
def test_a_final_answer_not_in_the_tasks_format_is_sent_back_with_the_format(
    placeholder: str,
) -> None:
    trace, backend = run(
        SingleAgent(harness="constrained"), SENT, answer(placeholder), answer("positive")
    )
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
    copy = act("calculator", expression="(55 - 40) / 40 * 100")
    replies = ["", again, again, copy, answer("..."), "<action>oops</action>", "x " * 150]
    agent = SingleAgent(AgentLimits(max_turns=2, max_repairs=9), harness="constrained")
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
    agent = SingleAgent(AgentLimits(max_turns=5, max_repairs=2), harness="constrained")
    trace, backend = run(agent, SENT, *["no tags here, sorry"] * 7)
    assert trace.outcome == "no_final_answer" and len(trace.steps) == 7  # 5 turns + 2 repairs
    assert [s.repair for s in trace.steps] == [False, True, True, False, False, False, False]
    assert "Not understood" in backend.calls[3][-1]["content"]  # past the bound: plain refusal


def test_repair_says_when_the_next_turn_is_the_last() -> None:
    agent = SingleAgent(AgentLimits(max_turns=3), harness="constrained")
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
    copy = act("calculator", expression="(55 - 40) / 40 * 100")  # the prompt's own example
    trace, _ = run(SingleAgent(harness="constrained"), SENT, copy, answer("positive"))
    assert trace.outcome == "ok"
    assert trace.steps[0].error == "example_copy" and "umbrella" in (
        trace.steps[0].observation or ""
    )
    assert trace.steps[1].repair
    trace, _ = run(SingleAgent(harness="strict"), SENT, copy, answer("positive"))
    assert (trace.steps[0].error, trace.steps[0].observation) == ("example_copy", "37.5")


def test_a_repeated_action_under_repair_gets_its_result_and_a_call_to_answer() -> None:
    again = act("calculator", expression="1+1")
    trace, backend = run(SingleAgent(harness="constrained"), QA, again, again, answer(QA.gold))
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    assert [(s.error, s.repair) for s in trace.steps] == [
        (None, False),
        ("repeated_action", False),
        (None, True),
    ]
    told = backend.calls[2][-1]["content"]
    assert "already ran exactly this action. It returned: 2" in told and "final answer" in told
    # Past the bound of repairs, a repeat ends the sample as before.
    bounded = SingleAgent(AgentLimits(max_repairs=0), harness="constrained")
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
    trace, _ = run(MultiAgent(harness="constrained"), SENT, *replies)
    assert trace.outcome == "ok" and trace.final_answer == "positive"
    assert [(s.agent, s.error) for s in trace.steps] == [
        ("nlp_agent", None),
        ("supervisor", None),
        ("supervisor", "repeated_action"),
    ]
    trace, _ = run(MultiAgent(harness="strict"), SENT, *replies)
    assert trace.outcome == "delegation_loop" and trace.final_answer is None


def test_the_hand_off_limit_keeps_every_step_in_order() -> None:
    limited = MultiAgent(TeamLimits(max_handoffs=1), harness="constrained")
    trace, _ = run(
        limited, SENT, act("nlp_agent", task="a"), answer("positive"), act("quant_agent", task="b")
    )
    assert trace.outcome == "delegation_loop" and "hand-offs" in (trace.error or "")
    assert [(s.agent, s.tool, s.error) for s in trace.steps] == [
        ("nlp_agent", None, None),
        ("supervisor", "nlp_agent", None),
        ("supervisor", "quant_agent", "delegation_loop"),
    ]
