"""The tag protocol parser: what small models emit, typed rejections, and fuzzing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmscope.paradigms.protocol import Action, ProtocolError, final_answer_tag, parse_reply

CALC = Action("calculator", {"expression": "growth(100, 120)"})


@pytest.mark.parametrize(
    "text",
    [
        '<think>use the tool</think><action>{"tool": "calculator", "input": '
        '{"expression": "growth(100, 120)"}}</action>',
        '<action>```json\n{"tool": "calculator", "input": {"expression": "growth(100, 120)"}}\n'
        "```</action>",
        "<action>{'tool': 'calculator', 'input': {'expression': 'growth(100, 120)'}}</action>",
        '<action>{"tool": "calculator", "input": {"expression": "growth(100, 120)"}} Then I will '
        "answer.",  # trailing text and no closing tag
        '<ACTION> {"tool": " calculator ", "input": {"expression": "growth(100, 120)"}} </ACTION>',
        '<action>{"tool": "calculator", "input": {"expression": "growth(100, 120)"}}</action>'
        "<observation>25</observation><final_answer>25</final_answer>",  # invented observation
    ],
)
def test_tolerant_of_what_small_models_emit(text: str) -> None:
    reply = parse_reply(text)
    assert reply.action == CALC and reply.final_answer is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The answer is positive.", "no_action_or_answer"),
        ("<action>calculator(1+1)</action>", "action_not_json"),
        ("<action>[1, 2]</action>", "action_not_object"),
        ('<action>{"input": {}}</action>', "action_missing_tool"),
        ('<action>{"tool": "calculator", "input": "1+1"}</action>', "action_bad_input"),
        ("<final_answer>  </final_answer>", "empty_final_answer"),
        ("<observation>42</observation><final_answer>42</final_answer>", "no_action_or_answer"),
    ],
)
def test_rejections_are_typed(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_reply(text)
    assert info.value.reason == reason


def test_final_answer_wins_and_missing_close_is_tolerated() -> None:
    reply = parse_reply('<think>done</think><final_answer>Positive\n<action>{"tool": "x"}')
    assert reply.final_answer == "Positive" and reply.action is None and reply.think == "done"
    assert final_answer_tag("<final_answer>a</final_answer> <final_answer>b") == "b"
    assert final_answer_tag("no tags") is None


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("<>/{}[]\"':,` \nactionfinal_answerthinkobs01")), max_size=200
    )
)
def test_fuzz_only_protocol_errors(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_reply(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text: str) -> None:
    for candidate in (
        text,
        f"<action>{text}</action>",
        f"<action>{{{text}",
        f"<final_answer>{text}",
    ):
        with contextlib.suppress(ProtocolError):
            parse_reply(candidate)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    tool=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
    args=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    wrap=st.sampled_from(["plain", "fence", "trailing", "unclosed"]),
)
def test_fuzz_round_trip_of_valid_actions(tool: str, args: dict[str, object], wrap: str) -> None:
    body = json.dumps({"tool": tool, "input": args})
    text = {
        "plain": f"<action>{body}</action>",
        "fence": f"<action>```json\n{body}\n```</action>",
        "trailing": f"<action>{body} now wait</action>",
        "unclosed": f"<think>t</think><action>{body}",
    }[wrap]
    reply = parse_reply(text)
    assert reply.action == Action(tool, args)
