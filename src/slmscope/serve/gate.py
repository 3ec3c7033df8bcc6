"""Bounded concurrency for served requests: `max_running` answered at once, `max_waiting` more
queued in arrival order, and past that a refusal that says when to come back."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from types import TracebackType


class Full(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"full; retry after {retry_after} s")
        self.retry_after = retry_after


class Place:
    """A request's place: taken in the queue by Gate.enter, held while it is answered."""

    def __init__(self, gate: Gate) -> None:
        self.gate, self.state = gate, "waiting"

    async def __aenter__(self) -> Place:
        try:
            await self.gate.free.acquire()
        except BaseException:
            self.leave()
            raise
        self.gate.waiting -= 1
        self.gate.running += 1
        self.state = "running"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.leave()

    def leave(self) -> None:
        """Give the place back (once, whatever state it is in)."""
        if self.state == "running":
            self.gate.running -= 1
            self.gate.free.release()
        elif self.state == "waiting":
            self.gate.waiting -= 1
        self.state = "left"


class Gate:
    def __init__(self, max_running: int, max_waiting: int) -> None:
        if max_running < 1 or max_waiting < 0:
            raise ValueError("a gate needs max_running >= 1 and max_waiting >= 0")
        self.max_running, self.max_waiting = max_running, max_waiting
        self.free = asyncio.Semaphore(max_running)
        self.running = self.waiting = 0
        self.recent: deque[float] = deque(maxlen=32)  # recent end-to-end latencies

    def enter(self) -> Place:
        """A place for one more request, or Full once every place is taken."""
        if self.running + self.waiting >= self.max_running + self.max_waiting:
            raise Full(self.retry_after())
        self.waiting += 1
        return Place(self)

    def took(self, seconds: float) -> None:
        self.recent.append(seconds)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: one of the running requests ends every
        (recent mean latency / places running) seconds."""
        pace = sum(self.recent) / len(self.recent) if self.recent else 1.0
        return max(1, math.ceil(pace / self.max_running))

    def counts(self) -> dict[str, int]:
        return {
            "running": self.running,
            "waiting": self.waiting,
            "max_running": self.max_running,
            "max_waiting": self.max_waiting,
        }
