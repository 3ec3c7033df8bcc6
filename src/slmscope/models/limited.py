"""At most N calls in flight to one backend: a served model's slots. The time a call waits
for a slot is recorded apart (`Timings.queue_s`), never in its latency."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from slmscope.models.base import Backend, BackendInfo, Completion, GenerationConfig, Message


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
