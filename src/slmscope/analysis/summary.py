"""Per model x paradigm x dataset aggregates of the results rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GroupSummary:
    model: str
    paradigm: str
    dataset: str
    n: int
    score: float
    completion_rate: float
    mean_tokens: float
    mean_latency_s: float


def summarize(rows: Iterable[Mapping[str, Any]]) -> list[GroupSummary]:
    """Mean score, share of `ok`, mean tokens and latency per group, in first-seen order."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["paradigm"], row["dataset"]), []).append(row)
    out = []
    for (model, paradigm, dataset), members in groups.items():
        n = len(members)
        out.append(
            GroupSummary(
                model=model,
                paradigm=paradigm,
                dataset=dataset,
                n=n,
                score=sum(r["score"] for r in members) / n,
                completion_rate=sum(r["outcome"] == "ok" for r in members) / n,
                mean_tokens=sum(r["total_tokens"] for r in members) / n,
                mean_latency_s=sum(r["latency_s"] for r in members) / n,
            )
        )
    return out
