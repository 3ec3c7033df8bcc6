"""The response cache: a reply is replayed only for the very same request to the very same model.

The key is a hash of everything that decides a reply: the backend's kind and its own account of
the model (file SHA-256 and chat template for the embedded backend; served model name, URL and
what the server says of itself for a server; library versions), every generation setting, the
constraint's grammar, the native tool specs, and the exact messages. So one model's answers can
never be served as another's, nor one setting's as another's (lm-evaluation-harness keys its
cache without the model: its issues #2715 and #4063).

A hit comes back marked (`Completion.cache_hit`) with the cost the reply had when it was made:
its tokens, timings and energy, not zero. Entries live in one SQLite file under the slmscope
cache directory, shared by every run on the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmscope.home import home_dir
from slmscope.metering.energy import UNAVAILABLE, EnergyReading
from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import (
    Backend,
    BackendInfo,
    Completion,
    GenerationConfig,
    Message,
    ToolCall,
)

KEY_VERSION = 1  # bumped if what enters the key changes


def cache_path() -> Path:
    return home_dir() / "cache" / "responses.sqlite"


VOLATILE = frozenset({"created", "timestamp", "uptime"})  # what servers stamp with the time


def _stable(value: Any) -> Any:
    """The identity without the fields a server stamps with the current time (vLLM's and
    llama-server's /v1/models say when they were asked): they would change every key."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def request_key(info: BackendInfo, messages: Sequence[Message], gen: GenerationConfig) -> str:
    """The hash of everything that decides the reply (see the module docstring)."""
    request = {
        "v": KEY_VERSION,
        "backend": info.kind,
        "identity": _stable(info.identity),
        "gen": {
            **gen.sampling(),
            "stop": list(gen.stop),
            "tools": list(gen.tools),
            "tool_choice": gen.tool_choice if gen.tools else None,
            "constraint": [
                gen.constraint.grammar,
                *map(dataclasses.astuple, gen.constraint.closings),
            ]
            if gen.constraint
            else None,
        },
        "messages": list(messages),
    }
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """Replies by request key, in one SQLite file (WAL: several runs may share it)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)"
            )

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else _completion(json.loads(row[0]))

    def put(self, key: str, reply: Completion) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO replies (key, reply) VALUES (?, ?)",
                (key, json.dumps(dataclasses.asdict(reply))),
            )

    def close(self) -> None:
        self._db.close()


def _completion(data: dict[str, Any]) -> Completion:
    return Completion(
        text=data["text"],
        usage=Usage(**data["usage"]),
        timings=Timings(**data["timings"]),
        finish_reason=data["finish_reason"],
        raw_usage=data["raw_usage"],
        tool_calls=tuple(ToolCall(**c) for c in data["tool_calls"]),
        energy=EnergyReading(**data["energy"]),
        cache_hit=True,
    )


class CachedBackend:
    """Answers from the cache when it holds this exact request, else asks `inner` (metered
    inside, so a stored reply carries its measured energy) and stores the reply."""

    def __init__(
        self, inner: Backend, cache: ResponseCache, info: BackendInfo, energy_method: str
    ) -> None:
        self.inner, self.cache, self.info = inner, cache, info
        self.energy_method = energy_method  # this run's meter: a hit measured otherwise has none
        self.name = inner.name
        self.hits = self.misses = 0

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        key = request_key(self.info, messages, gen)
        found = self.cache.get(key)
        if found is not None:
            self.hits += 1
            if found.energy.method != self.energy_method:  # not comparable with this run's
                found = dataclasses.replace(found, energy=UNAVAILABLE)
            return found
        self.misses += 1
        reply = await self.inner.chat(messages, gen)
        self.cache.put(key, reply)
        return reply

    async def describe(self) -> BackendInfo:
        return self.info

    async def aclose(self) -> None:
        await self.inner.aclose()
