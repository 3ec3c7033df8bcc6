"""The Backend protocol, the Completion record and the typed backend errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

from slmscope.metering.usage import Timings, Usage


class Message(TypedDict):
    role: str
    content: str


@dataclass(frozen=True)
class Completion:
    """One model reply: its text, token usage, timings and the backend's own raw usage."""

    text: str
    usage: Usage
    timings: Timings
    finish_reason: str | None = None
    raw_usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings shared by every call of a run (the study: temperature 0, top_p 0.9)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    seed: int = 0


@runtime_checkable
class Backend(Protocol):
    """Anything that answers chat messages. `name` identifies the backend and model in records."""

    name: str

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


class BackendError(Exception):
    """Base of every backend failure; `where` names the backend and model."""

    transient = False

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class BackendUnavailable(BackendError):
    """The backend cannot be reached or loaded (dead server, missing library, missing file)."""

    transient = True


class BackendTimeout(BackendError):
    """The call took longer than its time limit."""

    transient = True


class ContextOverflow(BackendError):
    """The prompt (plus the tokens asked for) does not fit the model's context window."""


class BadResponse(BackendError):
    """The backend answered, but with something that is not a usable completion."""
