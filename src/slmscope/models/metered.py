"""A backend whose every call is metered: the call's energy reading rides on its Completion.

Calls may overlap (a server with several slots). The meter is then read at every moment a call
starts or ends, and each span between two such moments is split equally among the calls in
flight during it; a call's energy is the sum of its shares, and `shared` says the most calls it
shared a span with. With one call at a time this is simply the call's own span.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from slmscope.metering.energy import UNAVAILABLE, EnergyMeter, EnergyReading
from slmscope.models.base import Backend, BackendInfo, Completion, GenerationConfig, Message


class MeteredBackend:
    """Wraps a backend; `meter` is read around each call (see the module docstring)."""

    def __init__(self, inner: Backend, meter: EnergyMeter) -> None:
        self.inner, self.meter = inner, meter
        self.name = inner.name
        self._shares: dict[int, list[EnergyReading]] = {}  # call -> its shares so far
        self._mark: Any = None
        self._ids = itertools.count()

    def _cut(self) -> None:
        """End the current span: share its energy among the calls in flight, start the next."""
        if self._shares and self._mark is not None:
            share = self.meter.stop(self._mark).divided(len(self._shares))
            for shares in self._shares.values():
                shares.append(share)
        self._mark = self.meter.start()

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        self._cut()
        call = next(self._ids)
        self._shares[call] = []
        try:
            reply = await self.inner.chat(messages, gen)
        finally:
            self._cut()
            shares = self._shares.pop(call)
        energy = EnergyReading.total(shares) if shares else UNAVAILABLE
        return dataclasses.replace(reply, energy=energy)

    async def describe(self) -> BackendInfo:
        return await self.inner.describe()

    async def aclose(self) -> None:
        await self.inner.aclose()
