"""The base paradigm: one call, the answer taken from the reply; and what every paradigm is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from slmscope.models.base import (
    Backend,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BudgetSpent,
    ContextOverflow,
    GenerationConfig,
    Message,
)
from slmscope.paradigms.harness import Harness
from slmscope.paradigms.prompts import base_messages
from slmscope.paradigms.protocol import final_answer_tag
from slmscope.paradigms.trace import Outcome, Step, Trace
from slmscope.tasks.record import Problem

OnStep = Callable[[Step], None]  # each step as it is made (streaming)
# A trace this sweep already made for another paradigm on the same problem (None: not made).
Given = Callable[[str], Awaitable[Trace | None]]
NO_HARNESS = "none"  # what records call the harness of a paradigm that has none
SEPARATOR = "·"  # between a paradigm and its harness in an arm's name: `single·act`


def arm_name(paradigm: str, harness: str) -> str:
    """An arm (a paradigm under a harness) as tables, routers and the server name it."""
    return paradigm if harness in (NO_HARNESS, "") else f"{paradigm}{SEPARATOR}{harness}"


def split_arm(arm: str) -> tuple[str, str | None]:
    """The paradigm and harness an arm names (None: the arm names no harness)."""
    paradigm, sep, harness = arm.partition(SEPARATOR)
    return paradigm, harness if sep else None


class Paradigm(Protocol):
    """How a model is put to work on a problem. It says what it is: `name` (what results call
    it), its `harness` (None: not harnessed), whether it `uses_tools`, and the `parts`: the
    paradigms whose traces on the same problem it can be computed from (`given`)."""

    name: str
    harness: Harness | None
    uses_tools: bool
    parts: tuple[str, ...]

    async def solve(
        self,
        problem: Problem,
        backend: Backend,
        gen: GenerationConfig,
        *,
        on_step: OnStep | None = None,
        given: Given | None = None,
    ) -> Trace: ...


def harness_label(paradigm: Paradigm) -> str:
    """The harness name that records and cell keys carry for this paradigm."""
    return paradigm.harness.name if paradigm.harness is not None else NO_HARNESS


def failed_call(err: BackendError) -> Outcome:
    """The outcome of a sample whose model call raised `err`."""
    if isinstance(err, ContextOverflow):
        return "context_overflow"
    if isinstance(err, BackendTimeout):
        return "timeout"
    if isinstance(err, BudgetSpent):
        return "max_steps"  # as a loop whose own token budget is spent
    return "backend_error"


class Base:
    """The model answers the problem directly."""

    name = "base"
    harness: Harness | None = None
    uses_tools = False
    parts: tuple[str, ...] = ()

    async def solve(
        self,
        problem: Problem,
        backend: Backend,
        gen: GenerationConfig,
        *,
        on_step: OnStep | None = None,
        given: Given | None = None,
    ) -> Trace:
        messages: list[Message] = base_messages(problem)
        try:
            reply = await backend.chat(messages, gen)
        except BackendUnavailable:
            raise  # a dead backend stops the run: no sample result is made up for it
        except BackendError as err:
            step = Step("base", 1, tuple(messages), "", None, None, error=str(err))
            if on_step:
                on_step(step)
            return Trace(steps=(step,), final_answer=None, outcome=failed_call(err), error=str(err))
        step = Step(
            agent="base",
            turn=1,
            messages=tuple(messages),
            output=reply.text,
            usage=reply.usage,
            timings=reply.timings,
            energy=reply.energy,
            cache_hit=reply.cache_hit,
        )
        if on_step:
            on_step(step)
        tagged = final_answer_tag(reply.text)
        answer = problem.answer.read(tagged if tagged is not None else reply.text)
        if answer is None:
            return Trace(
                steps=(step,),
                final_answer=None,
                outcome="no_final_answer",
                error="no answer could be read from the reply",
            )
        return Trace(steps=(step,), final_answer=answer, outcome="ok")
