"""Limits on a backend: at most N calls in flight (a served model's slots; the time a call
waits for a slot is recorded apart, `Timings.queue_s`, never in its latency), and a budget of
tokens over all the calls of one request (a served request's)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from slmscope.models.base import (
    Backend,
    BackendInfo,
    BudgetSpent,
    Completion,
    GenerationConfig,
    Message,
)


class LimitedBackend:
    def __init__(self, inner: Backend, slots: int) -> None:
        if slots < 1:
            raise ValueError("a backend needs at least one slot")
        self.inner, self.slots = inner, slots
        self.name = inner.name
        self._free = asyncio.Semaphore(slots)
        self.in_flight = self.peak = 0  # calls being served now, and the most at once

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        asked = time.perf_counter()
        async with self._free:
            waited = time.perf_counter() - asked
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                reply = await self.inner.chat(messages, gen)
            finally:
                self.in_flight -= 1
        return dataclasses.replace(
            reply, timings=dataclasses.replace(reply.timings, queue_s=waited)
        )

    async def describe(self) -> BackendInfo:
        return await self.inner.describe()

    async def aclose(self) -> None:
        await self.inner.aclose()


class BudgetedBackend:
    """One request's view of a backend: its calls together spend at most `tokens`, prompt and
    completion. A call is made only if the budget still holds its prompt (estimated as the
    previous call's: a conversation only grows) and at least one more token; it may generate no
    more than what is left. The first call's prompt is known only once it is made, so a
    request may overrun by that much. Once nothing is left, the next call raises BudgetSpent
    (the paradigm ends the sample as a spent budget). It also notes when the request's first
    token came and how its last call ended (`length`: cut by its token limit)."""

    def __init__(self, inner: Backend, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("a token budget must be at least 1")
        self.inner, self.tokens, self.spent = inner, tokens, 0
        self.name = inner.name
        self.last_prompt = 0
        self.first_token_at: float | None = None  # time.perf_counter() of the first token
        self.last_finish: str | None = None

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        left = self.tokens - self.spent - self.last_prompt
        if left <= 0:
            raise BudgetSpent(f"the request's budget of {self.tokens} tokens is spent")
        start = time.perf_counter()
        reply = await self.inner.chat(
            messages, dataclasses.replace(gen, max_tokens=min(gen.max_tokens, left))
        )
        if self.first_token_at is None:
            t = reply.timings
            self.first_token_at = start + t.queue_s + (t.ttft_s or t.latency_s)
        self.spent += reply.usage.total_tokens
        self.last_prompt = reply.usage.prompt_tokens
        self.last_finish = reply.finish_reason
        return reply

    async def describe(self) -> BackendInfo:
        return await self.inner.describe()

    async def aclose(self) -> None:
        """The backend is the server's, not the request's: closing a request leaves it open."""
