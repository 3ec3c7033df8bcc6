"""The base paradigm: one call, the answer taken from the reply."""

from __future__ import annotations

from typing import Protocol

from slmscope.models.base import (
    Backend,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ContextOverflow,
    GenerationConfig,
    Message,
)
from slmscope.paradigms.prompts import base_messages
from slmscope.paradigms.protocol import final_answer_tag
from slmscope.paradigms.trace import Outcome, Step, Trace
from slmscope.tasks.record import Task
from slmscope.tasks.scoring import extract_answer


class Paradigm(Protocol):
    """How a model is put to work on a task; `name` is what results call it."""

    name: str

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace: ...


def failed_call(err: BackendError) -> Outcome:
    """The outcome of a sample whose model call raised `err`."""
    if isinstance(err, ContextOverflow):
        return "context_overflow"
    if isinstance(err, BackendTimeout):
        return "timeout"
    return "backend_error"


class Base:
    """The model answers the task prompt directly."""

    name = "base"

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace:
        messages: list[Message] = base_messages(task)
        try:
            reply = await backend.chat(messages, gen)
        except BackendUnavailable:
            raise  # a dead backend stops the run: no sample result is made up for it
        except BackendError as err:
            step = Step(
                agent="base",
                turn=1,
                messages=tuple(messages),
                output="",
                usage=None,
                timings=None,
                error=str(err),
            )
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
        tagged = final_answer_tag(reply.text)
        answer = extract_answer(task, tagged if tagged is not None else reply.text)
        if answer is None:
            return Trace(
                steps=(step,),
                final_answer=None,
                outcome="no_final_answer",
                error="no answer could be extracted from the reply",
            )
        return Trace(steps=(step,), final_answer=answer, outcome="ok")
