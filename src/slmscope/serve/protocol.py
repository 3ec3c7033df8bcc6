"""The OpenAI-compatible wire format: the chat request as it arrives, the `slmscope` extension a
request may carry, the Problem a request becomes, and the response and stream chunks.

A request becomes a Problem with nothing of a gold in it (a served request has none): its last
user message is the prompt; every other message (a system message, earlier turns, an
instruction after the question), in order, is its context. What the router would want to
know, the request may declare in `slmscope`: the task type, the choices, the answer format.
Without it the problem is an open question (`qa`, free answer) and the router works from the
text alone.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slmscope.tasks.answer_format import ANSWER_KINDS, AnswerFormat, format_named
from slmscope.tasks.record import TASK_TYPES, Problem

UNDECLARED_TYPE = "qa"  # an undeclared request is an open question


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            if any(p.type != "text" for p in self.content):
                raise ValueError("only text content parts are served")
            return "".join(p.text or "" for p in self.content)
        return self.content or ""


class Hints(BaseModel):
    """The `slmscope` extension of a request: what the problem is, where the client knows."""

    model_config = ConfigDict(extra="forbid")
    task_type: str | None = None
    choices: list[str] | None = None
    answer_format: str | None = None
    max_request_tokens: int | None = Field(default=None, ge=1)  # over all the agent's calls
    max_request_seconds: float | None = Field(default=None, gt=0)

    @field_validator("task_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in TASK_TYPES:
            raise ValueError(f"unknown task_type {value!r}; known: {', '.join(TASK_TYPES)}")
        return value

    @field_validator("answer_format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in ANSWER_KINDS:
            raise ValueError(f"unknown answer_format {value!r}; known: {', '.join(ANSWER_KINDS)}")
        return value


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat completion request; fields the server does not use are accepted and ignored,
    as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    slmscope: Hints | None = None

    @property
    def declared_type(self) -> bool:
        return self.slmscope is not None and self.slmscope.task_type is not None

    def problem(self, request_id: str) -> Problem:
        """The problem this request asks (see the module docstring)."""
        texts = [(m.role, m.text()) for m in self.messages]
        users = [n for n, (role, _) in enumerate(texts) if role == "user"]
        if not users:
            raise ValueError("messages hold no user message to answer")
        last = users[-1]
        before = [
            f"{'Instructions' if role in ('system', 'developer') else role.title()}: {text}"
            for n, (role, text) in enumerate(texts)
            if n != last and text.strip()
        ]
        hints = self.slmscope or Hints()
        task_type = hints.task_type or UNDECLARED_TYPE
        choices = tuple(hints.choices or ())
        if hints.task_type or hints.answer_format or choices:
            answer = format_named(hints.answer_format, task_type, choices)
        else:
            answer = AnswerFormat("free")
        return Problem(
            id=request_id,
            dataset=f"served:{task_type}" if hints.task_type else "served",
            task_type=task_type,  # type: ignore[arg-type]
            prompt=texts[last][1],
            answer=answer,
            context="\n\n".join(before) or None,
        )


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An error as OpenAI's API writes one."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def usage_body(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def completion_body(
    request_id: str,
    model: str,
    answer: str,
    finish_reason: str,
    usage: dict[str, Any],
    extension: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
        "slmscope": extension,
    }


def chunk_body(
    request_id: str,
    model: str,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    extension: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    empty: bool = False,
) -> dict[str, Any]:
    """A stream chunk; `empty`: the usage chunk, which has no choices."""
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if empty
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        body["usage"] = usage
    if extension is not None:
        body["slmscope"] = extension
    return body
