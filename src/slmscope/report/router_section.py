"""The report's router section: per model, the router judged on the run's stored results
(analysis/router_verdict.py) beside every fixed arm and the oracle, or why none could be; and
the router's and the oracle's points for the frontier chart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from slmscope.analysis.router_verdict import Figures, Refused, saved_text


def router_section(
    prefixes: Sequence[str], figures: Sequence[Sequence[Figures]]
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The section's entries, one per run (its model names after its prefix, as the tables
    name them where runs are compared) and model; and the frontier's marked points (model,
    kind, name, score and tokens with their intervals)."""
    sections: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for prefix, found in zip(prefixes, figures, strict=True):
        for f in found:
            model = prefix + f.model
            if isinstance(f, Refused):
                sections.append({"model": model, "reason": f.reason})
                continue
            rows = f.records()
            sections.append(
                {
                    "model": model,
                    "reason": None,
                    "samples": f.samples,
                    "arms": f.arms,
                    "cost": f.cost,
                    "rows": rows,
                    "gap_closed": f.gap_closed,
                    "dataset_oracle": f.dataset_oracle,
                    "dataset_gap_closed": f.dataset_gap_closed,
                    "saved": saved_text(f),
                }
            )
            points += [
                {
                    "model": model,
                    "kind": r["kind"],
                    "name": r["name"],
                    "score": r["score"],
                    "score_lo": r["score_lo"],
                    "score_hi": r["score_hi"],
                    "tokens": r["cost"],
                    "tokens_lo": r["cost_lo"],
                    "tokens_hi": r["cost_hi"],
                }
                for r in rows
                if r["kind"] != "arm"
            ]
    return sections, pd.DataFrame(points)
