"""A streamed answer as server-sent events, in OpenAI's chunk format: the assistant's role at
once, then a chunk per model call as the agent makes it (an empty delta whose `slmscope` field
says which agent took the turn and what it called), then the final answer in pieces, the
finish with the request's `slmscope` record, the usage where asked, and `[DONE]`."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from slmscope.errors import UserError
from slmscope.paradigms.trace import Step
from slmscope.serve.gate import Place
from slmscope.serve.protocol import ChatRequest, chunk_body, error_body, usage_body
from slmscope.serve.service import Served, Service
from slmscope.serve.state import State, done
from slmscope.tasks.record import Problem

log = logging.getLogger("slmscope.serve")
BUDGET_ENDS = ("max_steps", "timeout")
_PIECES = re.compile(r"\s*\S+")


def finish_reason(served: Served) -> str:
    """`length` where the last model call was cut by its token limit, or a budget ended the
    request before an answer; else `stop`."""
    trace = served.trace
    spent = trace.final_answer is None and trace.outcome in BUDGET_ENDS
    return "length" if served.cut or spent else "stop"


def unanswerable(served: Served) -> tuple[str, str, str] | None:
    """An error (message, type, code) where the request could not be answered at all because
    of what it asked: its conversation does not fit the model's context window."""
    trace = served.trace
    if trace.final_answer is None and trace.outcome == "context_overflow":
        return (f"{trace.error}", "invalid_request_error", "context_length_exceeded")
    return None


def usage_of(served: Served) -> dict[str, Any]:
    cost = served.trace.cost()
    return usage_body(cost.prompt_tokens, cost.completion_tokens, cost.cached_tokens)


def step_note(step: Step) -> dict[str, Any]:
    """What a progress chunk says of one model call."""
    return {
        "step": {
            "agent": step.agent,
            "turn": step.turn,
            "tool": step.tool,
            "handoff": step.handoff,
            "repair": step.repair,
            "error": step.error,
        }
    }


def event(body: dict[str, Any]) -> bytes:
    """One server-sent event; JSON in ASCII, so no model output can end the frame (or be a
    lone surrogate that cannot be encoded)."""
    return f"data: {json.dumps(body)}\n\n".encode()


async def sse_events(
    service: Service,
    asked: ChatRequest,
    problem: Problem,
    place: Place,
    state: State,
    arrived: float,
) -> AsyncIterator[bytes]:
    rid, model = problem.id, service.config.model
    steps: asyncio.Queue[Step | None] = asyncio.Queue()
    task: asyncio.Task[Served] | None = None
    try:
        yield event(chunk_body(rid, model, {"role": "assistant", "content": ""}))
        async with place:
            task = asyncio.create_task(service.answer(asked, problem, on_step=steps.put_nowait))
            task.add_done_callback(lambda _: steps.put_nowait(None))
            while (step := await steps.get()) is not None:
                yield event(chunk_body(rid, model, {}, extension=step_note(step)))
            try:
                served = task.result()
            except UserError as err:  # the backend is gone: the stream ends with the error
                state.metrics.refuse(503)
                yield event(error_body(str(err), "unavailable", "backend_unavailable"))
                yield b"data: [DONE]\n\n"
                return
            except Exception as err:  # a bug: the stream still ends as a stream
                log.exception("error: a bug in slmscope ended a stream")
                state.metrics.refuse(500)
                yield event(error_body(f"internal error: {type(err).__name__}", "server_error"))
                yield b"data: [DONE]\n\n"
                return
        done(state, served, arrived)
        why = unanswerable(served)
        if why is not None:
            yield event({**error_body(*why), "slmscope": served.extension()})
            yield b"data: [DONE]\n\n"
            return
        for piece in _PIECES.findall(served.trace.final_answer or ""):
            yield event(chunk_body(rid, model, {"content": piece}))
        yield event(
            chunk_body(
                rid, model, {}, finish_reason=finish_reason(served), extension=served.extension()
            )
        )
        if asked.stream_options is not None and asked.stream_options.include_usage:
            yield event(chunk_body(rid, model, {}, usage=usage_of(served), empty=True))
        yield b"data: [DONE]\n\n"
    finally:
        place.leave()
        if task is not None and not task.done():
            task.cancel()  # the client went away: its agent stops
