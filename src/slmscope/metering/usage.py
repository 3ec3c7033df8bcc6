"""Token usage and timings of one model call: the cost records every backend fills in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Where the token counts came from: the server's own report, or our count of what it streamed.
UsageSource = Literal["backend", "counted"]
CHARS_PER_TOKEN = 4  # the one estimate of tokens from text, where no tokenizer has counted


def estimate_tokens(chars: int) -> int:
    """Tokens in `chars` characters of text, estimated (about 4 characters a token)."""
    return chars // CHARS_PER_TOKEN


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. `cached_tokens` are prompt tokens served from a reused KV prefix."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    source: UsageSource = "backend"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Wall latency of the whole call, time to first token, and decode speed (tokens/s)."""

    latency_s: float
    ttft_s: float | None
    decode_tps: float | None
    queue_s: float = 0.0  # waited for a free slot before the call was sent (not in latency_s)

    @staticmethod
    def measure(
        start: float, first_token: float | None, end: float, completion_tokens: int
    ) -> Timings:
        """Timings from perf_counter stamps; decode speed counts tokens after the first one."""
        ttft = None if first_token is None else first_token - start
        decode_tps = None
        if first_token is not None and completion_tokens > 1 and end > first_token:
            decode_tps = (completion_tokens - 1) / (end - first_token)
        return Timings(latency_s=end - start, ttft_s=ttft, decode_tps=decode_tps)
