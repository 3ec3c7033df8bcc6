"""The wrapper stack every paradigm calls through, built in one place: the backend metered
(energy per call), then the response cache (replays carry the measured energy), then the
slot limit (time waiting for a slot kept apart from latency)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slmscope.metering.energy import EnergyMeter
from slmscope.models.base import Backend, BackendInfo
from slmscope.models.cache import CachedBackend, ResponseCache
from slmscope.models.limited import LimitedBackend
from slmscope.models.metered import MeteredBackend


@dataclass
class Stack:
    """`backend` is what paradigms are given; the layers are kept for their counters."""

    limited: LimitedBackend
    cached: CachedBackend | None

    @property
    def backend(self) -> Backend:
        return self.limited  # the outermost layer

    def counters(self) -> dict[str, Any]:
        """Concurrency (slots and the most calls at once) and cache use, for the run record."""
        found: dict[str, Any] = {
            "concurrency": {"slots": self.limited.slots, "peak": self.limited.peak}
        }
        if self.cached is not None:
            found["cache"] = {"hits": self.cached.hits, "misses": self.cached.misses}
        return found


def build_stack(
    backend: Backend,
    info: BackendInfo,
    meter: EnergyMeter,
    *,
    slots: int = 1,
    cache: ResponseCache | None = None,
) -> Stack:
    """The stack over `backend`: `slots` calls at once where it has parallel slots (else one)."""
    metered: Backend = MeteredBackend(backend, meter)
    cached = CachedBackend(metered, cache, info, meter.method) if cache else None
    allowed = slots if info.abilities.parallel_slots else 1
    limited = LimitedBackend(cached or metered, allowed)
    return Stack(limited, cached)
