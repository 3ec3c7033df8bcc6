"""What a served request becomes (the Problem the paradigms see), what it may declare, and the
gate that bounds how many are answered and queued."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from slmscope.serve.gate import Full, Gate
from slmscope.serve.protocol import ChatRequest


def request(**body: object) -> ChatRequest:
    return ChatRequest.model_validate({"model": "m", **body})


def test_the_last_user_message_is_asked_and_what_came_before_is_its_context() -> None:
    asked = request(
        messages=[
            {"role": "system", "content": "Answer as an auditor."},
            {"role": "user", "content": "Revenue was 1,784."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": [{"type": "text", "text": "By how much did it grow?"}]},
            {"role": "system", "content": "Answer in dollars."},
        ]
    )
    problem = asked.problem("r1")
    assert problem.prompt == "By how much did it grow?"
    assert problem.context == (
        "Instructions: Answer as an auditor.\n\nUser: Revenue was 1,784.\n\nAssistant: Noted."
        "\n\nInstructions: Answer in dollars."
    )
    assert (problem.task_type, problem.answer.kind, problem.dataset) == ("qa", "free", "served")
    assert not asked.declared_type


def test_what_a_request_declares_shapes_the_answer_format() -> None:
    hints = {"task_type": "sentiment", "choices": ["positive", "negative", "neutral"]}
    problem = request(messages=[{"role": "user", "content": "Shares soared."}], slmscope=hints)
    p = problem.problem("r2")
    assert p.task_type == "sentiment" and p.choices == ("positive", "negative", "neutral")
    assert (
        p.answer.instruction() == "The final answer is exactly one of: positive, negative, neutral."
    )
    assert p.dataset == "served:sentiment"
    number = request(
        messages=[{"role": "user", "content": "2+2?"}], slmscope={"answer_format": "number"}
    )
    assert number.problem("r3").answer.kind == "number" and not number.declared_type
    qa = request(messages=[{"role": "user", "content": "x"}], slmscope={"task_type": "qa"})
    assert qa.problem("r4").answer.kind == "number_or_yesno"  # the task type's own default


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "slmscope": {"task_type": "poetry"}},
         "unknown task_type 'poetry'"),
        ({"messages": [{"role": "user", "content": "x"}], "slmscope": {"answer_format": "essay"}},
         "unknown answer_format 'essay'"),
        ({"messages": [{"role": "user", "content": "x"}], "slmscope": {"shortcut": 1}}, "shortcut"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ],
)  # fmt: skip
def test_a_malformed_request_is_refused_naming_the_field(
    body: dict[str, object], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        request(**body)


def test_a_request_the_server_cannot_state_is_refused() -> None:
    with pytest.raises(ValueError, match="no user message"):
        request(messages=[{"role": "system", "content": "hi"}]).problem("r")
    image = [{"type": "image_url", "image_url": {"url": "http://x"}}]
    with pytest.raises(ValueError, match="only text"):
        request(messages=[{"role": "user", "content": image}]).problem("r")
    with pytest.raises(ValueError, match="label"):  # a label format needs the choices
        request(
            messages=[{"role": "user", "content": "x"}], slmscope={"answer_format": "label"}
        ).problem("r")


def test_the_gate_runs_some_queues_some_and_refuses_the_rest() -> None:
    async def go() -> None:
        gate = Gate(max_running=1, max_waiting=1)
        first, second = gate.enter(), gate.enter()
        with pytest.raises(Full) as full:
            gate.enter()
        assert full.value.retry_after >= 1
        async with first:
            assert gate.counts()["running"] == 1 and gate.counts()["waiting"] == 1
            entered = asyncio.create_task(second.__aenter__())
            await asyncio.sleep(0.01)
            assert not entered.done()  # it waits for the running one
        await entered
        assert gate.counts()["running"] == 1 and gate.counts()["waiting"] == 0
        second.leave()
        second.leave()  # leaving twice gives one place back, once
        assert gate.counts()["running"] == 0
        gate.took(30.0)
        a, b = gate.enter(), gate.enter()
        with pytest.raises(Full) as again:
            gate.enter()
        assert again.value.retry_after == 30  # one request ends every 30 s
        a.leave()
        b.leave()
        assert gate.counts() == {"running": 0, "waiting": 0, "max_running": 1, "max_waiting": 1}

    asyncio.run(go())
