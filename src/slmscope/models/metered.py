"""A backend whose every call is metered: the call's energy reading rides on its Completion."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from slmscope.metering.energy import EnergyMeter
from slmscope.models.base import Backend, BackendInfo, Completion, GenerationConfig, Message


class MeteredBackend:
    """Wraps a backend; `meter` brackets each chat call (calls of one backend run one at a
    time, so the span holds this call's work only)."""

    def __init__(self, inner: Backend, meter: EnergyMeter) -> None:
        self.inner, self.meter = inner, meter
        self.name = inner.name

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        mark = self.meter.start()
        reply = await self.inner.chat(messages, gen)
        return dataclasses.replace(reply, energy=self.meter.stop(mark))

    async def describe(self) -> BackendInfo:
        return await self.inner.describe()

    async def aclose(self) -> None:
        await self.inner.aclose()
