"""The base paradigm's control flow, with a scripted backend."""

from __future__ import annotations

import asyncio

import pytest

from conftest import ScriptedBackend
from slmscope.models.base import (
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ContextOverflow,
    GenerationConfig,
)
from slmscope.paradigms.base import Base
from slmscope.tasks.builtin import sentiment

TASK = sentiment()[0]  # gold: positive


def solve(*replies: object) -> object:
    backend = ScriptedBackend(list(replies))  # type: ignore[arg-type]
    return asyncio.run(Base().solve(TASK.problem, backend, GenerationConfig())), backend


def test_tagged_answer_wins_over_other_labels() -> None:
    trace, backend = solve("Not negative at all. <final_answer>Positive</final_answer>")
    assert trace.outcome == "ok" and trace.final_answer == "positive"  # type: ignore[attr-defined]
    system, user = backend.calls[0]  # type: ignore[attr-defined]
    assert "<final_answer>" in system["content"] and TASK.problem.text() == user["content"]
    assert user["content"].startswith(TASK.prompt)  # then the answer-format line, as for agents


def test_untagged_reply_falls_back_to_label_extraction() -> None:
    trace, _ = solve("The sentiment here is clearly positive.")
    assert trace.outcome == "ok" and trace.final_answer == "positive"  # type: ignore[attr-defined]


def test_reply_without_an_answer() -> None:
    trace, _ = solve("I cannot tell.")
    assert trace.outcome == "no_final_answer"  # type: ignore[attr-defined]
    assert trace.final_answer is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ContextOverflow("too long"), "context_overflow"),
        (BackendTimeout("slow"), "timeout"),
        (BadResponse("garbage"), "backend_error"),
    ],
)
def test_backend_errors_become_outcomes(error: Exception, outcome: str) -> None:
    trace, _ = solve(error)
    assert trace.outcome == outcome  # type: ignore[attr-defined]
    assert trace.steps[0].error and trace.steps[0].usage is None  # type: ignore[attr-defined]


def test_unavailable_backend_stops_instead_of_scoring() -> None:
    with pytest.raises(BackendUnavailable):
        solve(BackendUnavailable("gone"))
