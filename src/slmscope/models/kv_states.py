"""Saved KV states: prompt-prefix reuse across agents and samples on the embedded backend.

llama.cpp keeps one KV cache per context, and llama-cpp-python reuses only the prefix a prompt
shares with the previous call's. A run takes the arms in turn on each sample (base, the single
agent, the supervisor and its specialists), so that prefix is lost at every switch and each
system prompt is evaluated again. `KvStates` keeps a few sequence states (llama.cpp's state of
one sequence: the K and V of its tokens, without logits), keyed by their tokens:

- before a call, the saved state sharing the longest prefix with the prompt is restored, where
  it saves clearly more than the live context does;
- the live context is saved first whenever the call is about to cut it, so that returning to
  an agent resumes where it was;
- the states held never take more than their byte budget: the least recently used go first,
  and a state larger than the whole budget is not kept.

Reuse must change which prompt tokens are evaluated, never the answer. On the CPU, llama.cpp's
results depend a little on how tokens were batched (a prompt evaluated after a 2-token prefix
gave another greedy answer than the same prompt evaluated whole, on Qwen2.5-Coder-0.5B), so a
prompt is always evaluated in the same chunks, whatever came before: chunks of `CHUNK` tokens
starting at multiples of `CHUNK` (the context's batch size), and only whole chunks evaluated so
(a state's `canon`: not the generated tokens, nor a prompt's last, partial chunk) are reused.
The same prompt then gives the same answer with reuse or without, and after any other calls.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Tokens = npt.NDArray[np.intc]

CHUNK = 64  # prompts are evaluated in chunks of this many tokens, from multiples of it
MIN_GAIN = CHUNK  # a saved state is restored where it saves at least a chunk
DEFAULT_BUDGET_MB = 512


def common_prefix(a: Tokens, b: Tokens) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def whole_chunks(n: int) -> int:
    """`n` rounded down to a multiple of CHUNK."""
    return n // CHUNK * CHUNK


@dataclass(frozen=True)
class Saved:
    """A saved sequence state: the tokens it holds (all evaluated in whole chunks)."""

    tokens: Tokens
    data: bytes


@dataclass
class KvStats:
    """What the states did, for the run's model record."""

    saved: int = 0
    restored: int = 0
    restored_tokens: int = 0
    evicted: int = 0
    too_large: int = 0
    peak_bytes: int = 0


@dataclass
class KvStates:
    """Saved sequence states of one context under a byte budget (0: none are kept, and the live
    context's whole chunks are still the only ones reused), least recently used out."""

    budget_bytes: int
    live_canon: int = 0  # how many leading tokens of the live context are whole chunks
    stats: KvStats = field(default_factory=KvStats)
    _held: OrderedDict[bytes, Saved] = field(default_factory=OrderedDict)
    _bytes: int = 0

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._held)

    def best(self, prompt: Tokens) -> tuple[Saved | None, int]:
        """The saved state sharing the longest prefix with `prompt`, and that length."""
        found: Saved | None = None
        longest = 0
        for saved in self._held.values():
            n = common_prefix(saved.tokens, prompt)
            if n > longest:
                found, longest = saved, n
        return found, longest

    def covers(self, tokens: Tokens) -> bool:
        """Whether a saved state already holds `tokens` (they are a prefix of its own)."""
        return any(common_prefix(s.tokens, tokens) == len(tokens) for s in self._held.values())

    def touch(self, saved: Saved) -> None:
        key = saved.tokens.tobytes()
        if key in self._held:
            self._held.move_to_end(key)

    def put(self, tokens: Tokens, data: bytes) -> bool:
        """Keep a state; states it covers (their tokens a prefix of these) are dropped, and the
        least recently used leave until the budget holds. False where it alone exceeds it."""
        if len(data) > self.budget_bytes:
            self.stats.too_large += 1
            return False
        for key, old in list(self._held.items()):
            if common_prefix(old.tokens, tokens) == len(old.tokens):
                self._drop(key)
        self._held[tokens.tobytes()] = Saved(tokens.copy(), data)
        self._bytes += len(data)
        self.stats.saved += 1
        while self._bytes > self.budget_bytes:
            self._drop(next(iter(self._held)))
            self.stats.evicted += 1
        self.stats.peak_bytes = max(self.stats.peak_bytes, self._bytes)
        return True

    def _drop(self, key: bytes) -> None:
        self._bytes -= len(self._held.pop(key).data)

    def record(self) -> dict[str, Any]:
        """The setting and what it did, for the run's model record."""
        st = self.stats
        return {
            "budget_mb": round(self.budget_bytes / 2**20, 1),
            "chunk_tokens": CHUNK,
            "saved": st.saved,
            "restored": st.restored,
            "restored_tokens": st.restored_tokens,
            "evicted": st.evicted,
            "too_large": st.too_large,
            "held_mb": round(self._bytes / 2**20, 1),
            "peak_mb": round(st.peak_bytes / 2**20, 1),
        }


def _save_live(llm: Any, states: KvStates) -> None:
    """Keep the live context's whole chunks (sequence 0, cut to them: the call about to be made
    evaluates from no further on) before the call cuts or replaces it."""
    import llama_cpp

    n = states.live_canon
    tokens = np.array(llm.input_ids[:n], dtype=np.intc)
    if n < CHUNK or states.covers(tokens):
        return
    llm._ctx.kv_cache_seq_rm(0, n, -1)
    llm.n_tokens = n
    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    got = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, 0)
    if got:
        states.put(tokens, bytes(memoryview(buf)[:got]))


def _restore(llm: Any, states: KvStates, saved: Saved) -> bool:
    """Load a saved state into sequence 0 and tell the binding which tokens it holds."""
    import llama_cpp

    buf = (ctypes.c_uint8 * len(saved.data)).from_buffer_copy(saved.data)
    if not llama_cpp.llama_state_seq_set_data(llm.ctx, buf, len(saved.data), 0):
        llm.n_tokens = states.live_canon = 0  # the sequence was cleared: nothing is left
        return False
    n = len(saved.tokens)
    llm.input_ids[:n] = saved.tokens
    llm.n_tokens = states.live_canon = n
    llm._requires_eval = True
    return True


def prepare(llm: Any, states: KvStates, prompt: Tokens) -> None:
    """Before a call on `prompt` (the context's batch size being CHUNK): keep the live context
    where the call would cut it, restore the saved state that saves clearly more, and leave the
    binding to evaluate the prompt from the last whole chunk it shares, in whole chunks."""
    last = whole_chunks(len(prompt) - 1)  # the chunk with the prompt's last token is evaluated
    live = min(common_prefix(np.asarray(llm.input_ids[: llm.n_tokens]), prompt), states.live_canon)
    saved, shared = states.best(prompt)
    if states.budget_bytes and live < llm.n_tokens:
        _save_live(llm, states)
    gain = whole_chunks(min(shared, last))
    if saved is not None and gain >= whole_chunks(min(live, last)) + MIN_GAIN:
        states.touch(saved)
        if _restore(llm, states, saved):
            states.stats.restored += 1
            states.stats.restored_tokens += gain
            live = shared
    llm.n_tokens = whole_chunks(min(live, last))  # the binding's own prefix match stops here
    states.live_canon = whole_chunks(len(prompt))  # once this call has evaluated the prompt
