"""The one retry policy: bounded attempts with exponential backoff, for transient errors only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from slmscope.models.base import BackendError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0

    def delay(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run `call`, retrying transient BackendErrors; the last error is raised with the count."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except BackendError as err:
            if not err.transient or attempt == policy.attempts:
                if attempt > 1:
                    err.add_note(f"after {attempt} attempts")
                raise
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable: attempts must be >= 1")
