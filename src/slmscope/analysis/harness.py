"""How much of a verdict is the harness: each agent paradigm under each harness, next to base.

A run with several harnesses compares configurations, not paradigms alone: `arms` labels the
agent rows `single·repair`, `multi·strict` and so on (the base paradigm, which has no harness,
stays `base`), so that every table, chart and recommendation keeps them apart. The raw names
stay in `paradigm_name` and `harness`.

`harness_effect` sets the harness effect (each harness against strict, on the same samples)
beside the paradigm effect (each agent against base, on the same samples), with the protocol
failures that make the difference; `harness_flips` says per task type whether the
recommended paradigm changes with the harness.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from slmscope.analysis.overview import recommend
from slmscope.analysis.stats import bootstrap_ci, paired_bootstrap
from slmscope.analysis.tables import arms

PROTOCOL_OUTCOMES = ("no_final_answer", "malformed_action")


def _share(flags: pd.Series, seed: int) -> tuple[float, float, float]:
    data = flags.astype(float).to_numpy()
    if data.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_ci(data, seed=seed)
    return float(data.mean()), low, high


def _paired(a: pd.DataFrame, b: pd.DataFrame, seed: int) -> tuple[float, float, float, int]:
    """Mean score of b minus a on their shared samples, with its 95% interval."""
    pair = a.merge(b, on=["dataset", "sample_id"], suffixes=("_a", "_b"))
    if pair.empty:
        return math.nan, math.nan, math.nan, 0
    diff, lo, hi, _ = paired_bootstrap(
        pair["score_a"].to_numpy(float), pair["score_b"].to_numpy(float), seed=seed
    )
    return diff, lo, hi, len(pair)


def protocol_flags(results: pd.DataFrame, steps: pd.DataFrame | None) -> pd.Series:
    """Per sample: it ended without an answer the protocol could read, repeated itself, or
    copied the prompt's example (from its steps)."""
    flags = results["outcome"].isin(PROTOCOL_OUTCOMES) | (results["outcome"] == "delegation_loop")
    flags |= (results["outcome"] == "max_steps") & results["error"].fillna("").str.contains(
        "repeated"
    )
    if steps is not None and not steps.empty and "error" in steps:
        copied = set(steps.loc[steps["error"] == "example_copy", "cell_key"])
        flags |= results["cell_key"].isin(copied)
    return flags


def acted_share(group: pd.DataFrame) -> float:
    """The share of a group's samples with tools that acted (NaN where none had tools: base,
    or rows stored before tool use was counted)."""
    if "acted" not in group or "tools_offered" not in group:
        return math.nan
    offered = group[group["tools_offered"].fillna(0).astype(int) > 0]
    return float(offered["acted"].fillna(False).astype(float).mean()) if len(offered) else math.nan


def harness_effect(
    results: pd.DataFrame, steps: pd.DataFrame | None = None, *, seed: int = 0
) -> pd.DataFrame:
    """Per model x paradigm x harness: completion, protocol-failure share and score with 95%
    intervals, the share of samples that acted (`acted`: NaN without tools), tokens and latency
    per sample, the score's change against the same paradigm under `strict` and against base,
    each paired on the shared samples."""
    if results.empty:
        return pd.DataFrame()
    frame = arms(results)
    frame = frame.assign(protocol_failure=protocol_flags(frame, steps).to_numpy())
    rows: list[dict[str, Any]] = []
    keys = ["model", "paradigm_name", "harness"]
    for (model, paradigm, harness), group in frame.groupby(keys, sort=False):
        base = frame[(frame["model"] == model) & (frame["paradigm_name"] == "base")]
        strict = frame[
            (frame["model"] == model)
            & (frame["paradigm_name"] == paradigm)
            & (frame["harness"] == "strict")
        ]
        ok = _share(group["outcome"] == "ok", seed)
        failed = _share(group["protocol_failure"], seed)
        score = _share(group["score"], seed)
        vs_base = _paired(base, group, seed) if paradigm != "base" else (math.nan,) * 3 + (0,)
        vs_strict = (
            _paired(strict, group, seed)
            if harness not in ("strict", "none") and not strict.empty
            else (math.nan,) * 3 + (0,)
        )
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "harness": harness,
                "n": len(group),
                "completion_rate": ok[0],
                "completion_lo": ok[1],
                "completion_hi": ok[2],
                "protocol_failure": failed[0],
                "protocol_lo": failed[1],
                "protocol_hi": failed[2],
                "score": score[0],
                "score_lo": score[1],
                "score_hi": score[2],
                "acted": acted_share(group),
                "tokens_per_sample": float(group["total_tokens"].mean()),
                "latency_s": float(group["latency_s"].mean()),
                "vs_strict": vs_strict[0],
                "vs_strict_lo": vs_strict[1],
                "vs_strict_hi": vs_strict[2],
                "vs_base": vs_base[0],
                "vs_base_lo": vs_base[1],
                "vs_base_hi": vs_base[2],
            }
        )
    return pd.DataFrame(rows)


def harness_flips(results: pd.DataFrame, *, seed: int = 0) -> list[dict[str, Any]]:
    """Per model and task type, the paradigm recommended under each agent harness (each
    judged with base alone beside it), and whether that verdict changes with the harness."""
    frame = arms(results)
    harnesses = sorted(set(frame.loc[frame["harness"] != "none", "harness"]))
    chosen: dict[tuple[str, str], dict[str, str]] = {}
    for harness in harnesses:
        part = frame[frame["harness"].isin(("none", harness))].assign(
            paradigm=lambda f: f["paradigm_name"]
        )
        for rec in recommend(part, seed=seed):
            chosen.setdefault((rec.model, rec.task_type), {})[harness] = rec.paradigm
    return [
        {
            "model": model,
            "task_type": task_type,
            "by_harness": verdicts,
            "flips": len(set(verdicts.values())) > 1,
        }
        for (model, task_type), verdicts in chosen.items()
    ]
