"""The paradigm-level view of a run: the reference study's Table 2 with intervals, the
quality-versus-cost frontier, and a recommendation per task type.

Energy is shown per sample beside per token: per token alone rewards paradigms that spend many
tokens (the study's multi agent had the lowest energy per token and the highest per sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from slmscope.analysis.stats import bootstrap_ci, paired_bootstrap
from slmscope.analysis.tables import nrq, summarize


def _mean_ci(values: pd.Series, seed: int) -> tuple[float, float, float]:
    data = values.dropna().to_numpy(float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_ci(data, seed=seed)
    return float(data.mean()), low, high


def energy_label(methods: pd.Series) -> str:
    """How a group's energy was obtained: one method, or `mixed`, or `unavailable`."""
    found = sorted(set(methods.dropna()) - {"unavailable"})
    return found[0] if len(found) == 1 else ("mixed" if found else "unavailable")


def paradigm_table(results: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per model x paradigm (over all its datasets): NRQ, score, completion rate, latency,
    tokens/sample, tokens/s, energy/sample and energy/token, with 95% bootstrap intervals on
    the per-sample means. Energy is NaN where any sample of the group has none."""
    if results.empty:
        return pd.DataFrame()
    per_dataset = summarize(results, seed=seed)
    gains = nrq(per_dataset)
    rows: list[dict[str, Any]] = []
    for (model, paradigm), group in results.groupby(["model", "paradigm"], sort=False):
        score, score_lo, score_hi = _mean_ci(group["score"], seed)
        ok, ok_lo, ok_hi = _mean_ci((group["outcome"] == "ok").astype(float), seed)
        latency, lat_lo, lat_hi = _mean_ci(group["latency_s"], seed)
        tokens, tok_lo, tok_hi = _mean_ci(group["total_tokens"], seed)
        energy = group["energy_j"].astype(float)
        metered = bool(energy.notna().all()) and len(energy) > 0
        e_sample, e_lo, e_hi = _mean_ci(energy, seed) if metered else (math.nan,) * 3
        mine = gains[(gains["model"] == model) & (gains["paradigm"] == paradigm)]
        usable = mine[~mine["base_near_zero"]] if len(mine) else mine
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "n": len(group),
                "datasets": group["dataset"].nunique(),
                "nrq": (0.0 if not math.isnan(score) else math.nan)
                if paradigm == "base"
                else (float(usable["nrq"].mean()) if len(usable) else math.nan),
                "nrq_pairs": len(usable),
                "score": score,
                "score_lo": score_lo,
                "score_hi": score_hi,
                "completion_rate": ok,
                "completion_lo": ok_lo,
                "completion_hi": ok_hi,
                "latency_s": latency,
                "latency_lo": lat_lo,
                "latency_hi": lat_hi,
                "tokens_per_sample": tokens,
                "tokens_lo": tok_lo,
                "tokens_hi": tok_hi,
                "prompt_evaluated": prompt_evaluated(group),
                "tokens_per_s": float(group["total_tokens"].sum() / group["latency_s"].sum())
                if group["latency_s"].sum() > 0
                else math.nan,
                "energy_per_sample_j": e_sample,
                "energy_lo": e_lo,
                "energy_hi": e_hi,
                "energy_per_token_j": float(energy.sum() / group["total_tokens"].sum())
                if metered and group["total_tokens"].sum() > 0
                else math.nan,
                "energy_method": energy_label(group["energy_method"]),
                "peak_rss_mb": float(group["peak_rss_mb"].max())
                if group["peak_rss_mb"].notna().any()
                else math.nan,
            }
        )
    return pd.DataFrame(rows)


def prompt_evaluated(group: pd.DataFrame) -> float:
    """The share of prompt tokens evaluated rather than served from a reused KV prefix (NaN
    where no prompt tokens were counted)."""
    if "prompt_tokens" not in group or "cached_tokens" not in group:
        return math.nan
    sent = float(group["prompt_tokens"].sum())
    return 1.0 - float(group["cached_tokens"].sum()) / sent if sent > 0 else math.nan


def pareto_front(points: pd.DataFrame, cost: str, quality: str = "score") -> pd.Series:
    """True for the points no other point beats: at most the cost and at least the quality,
    better in one. Points with a missing cost are never on the front."""
    values = points[[cost, quality]].to_numpy(float)
    front = []
    for i, (c, q) in enumerate(values):
        if math.isnan(c) or math.isnan(q):
            front.append(False)
            continue
        others = np.delete(values, i, axis=0)
        beaten = (
            (others[:, 0] <= c) & (others[:, 1] >= q) & ((others[:, 0] < c) | (others[:, 1] > q))
        )
        front.append(not bool(beaten.any()))
    return pd.Series(front, index=points.index)


def outcome_shares(results: pd.DataFrame) -> pd.DataFrame:
    """Share of each outcome per model x paradigm (rows sum to 1)."""
    counts = results.groupby(["model", "paradigm", "outcome"], sort=False).size()
    shares = counts / counts.groupby(level=[0, 1]).transform("sum")
    return shares.rename("share").reset_index()


def agent_costs(steps: pd.DataFrame) -> pd.DataFrame:
    """Per model x paradigm x agent: model calls, tokens, latency and energy, summed, and the
    agent's share of the paradigm's tokens (the multi agent's split by specialist)."""
    if steps.empty:
        return pd.DataFrame(
            columns=["model", "paradigm", "agent", "calls", "tokens", "latency_s", "energy_j"]
        )
    frame = steps.assign(
        tokens=steps["prompt_tokens"].fillna(0) + steps["completion_tokens"].fillna(0)
    )
    out = (
        frame.groupby(["model", "paradigm", "agent"], sort=False)
        .agg(
            calls=("turn", "size"),
            tokens=("tokens", "sum"),
            latency_s=("latency_s", "sum"),
            energy_j=("energy_j", lambda e: e.sum() if e.notna().all() else math.nan),
        )
        .reset_index()
    )
    total = out.groupby(["model", "paradigm"])["tokens"].transform("sum")
    out["token_share"] = np.where(total > 0, out["tokens"] / total.where(total > 0, 1), 0.0)
    return out


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, *, seed: int = 0) -> list[dict[str, Any]]:
    """Two runs' results: for each model, paradigm and dataset in both, the paired score
    difference (b - a) on the shared samples, and the change in mean tokens and latency."""
    keys = ["model", "paradigm", "dataset", "sample_id"]
    both = a.merge(b, on=keys, suffixes=("_a", "_b"))
    rows = []
    for (model, paradigm, dataset), g in both.groupby(keys[:3], sort=False):
        diff, lo, hi, p = paired_bootstrap(
            g["score_a"].to_numpy(float), g["score_b"].to_numpy(float), seed=seed
        )
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "dataset": dataset,
                "pairs": len(g),
                "score_a": g["score_a"].mean(),
                "score_b": g["score_b"].mean(),
                "diff": diff,
                "lo": lo,
                "hi": hi,
                "p": p,
                "tokens_a": g["total_tokens_a"].mean(),
                "tokens_b": g["total_tokens_b"].mean(),
                "latency_a": g["latency_s_a"].mean(),
                "latency_b": g["latency_s_b"].mean(),
            }
        )
    return rows


@dataclass(frozen=True)
class Recommendation:
    model: str
    task_type: str
    paradigm: str
    score: float
    score_lo: float
    score_hi: float
    tokens_per_sample: float
    latency_s: float
    energy_per_sample_j: float
    confidence: str  # "clear", "tied" or "too few samples"
    text: str


def _cost_key(row: pd.Series) -> tuple[float, float]:
    return float(row["tokens_per_sample"]), float(row["latency_s"])


def recommend(results: pd.DataFrame, *, seed: int = 0, min_pairs: int = 5) -> list[Recommendation]:
    """Per model and task type: the cheapest paradigm whose score is not shown to be below the
    best one's (paired bootstrap on the shared samples: the difference's 95% interval reaches
    0), with the numbers and how sure that is. Rows without a score (served traffic) have no
    say."""
    out: list[Recommendation] = []
    scored = results[results["score"].notna()]
    for (model, task_type), group in scored.groupby(["model", "task_type"], sort=False):
        stats = (
            group.groupby("paradigm", sort=False)
            .agg(
                score=("score", "mean"),
                tokens_per_sample=("total_tokens", "mean"),
                latency_s=("latency_s", "mean"),
                energy=("energy_j", lambda e: e.mean() if e.notna().all() else math.nan),
                n=("score", "size"),
            )
            .reset_index()
        )
        best = stats.iloc[int(stats["score"].to_numpy(float).argmax())]
        scores = group.pivot_table(index="sample_id", columns="paradigm", values="score")
        top = str(best["paradigm"])
        tied: list[str] = []
        verdicts: list[tuple[str, float, float, float, int]] = []
        for paradigm in stats["paradigm"].astype(str):
            if paradigm == top:
                tied.append(paradigm)
                continue
            pair = scores[[top, paradigm]].dropna()
            diff, lo, hi, _ = paired_bootstrap(
                pair[top].to_numpy(float), pair[paradigm].to_numpy(float), seed=seed
            )
            if len(pair) < min_pairs or hi >= 0:
                tied.append(paradigm)
            verdicts.append((paradigm, diff, lo, hi, len(pair)))
        candidates = stats[stats["paradigm"].isin(tied)]
        chosen = min((r for _, r in candidates.iterrows()), key=_cost_key)
        few = int(stats["n"].min()) < min_pairs
        confidence = "too few samples" if few else ("clear" if len(tied) == 1 else "tied")
        lo, hi = bootstrap_ci(group[group["paradigm"] == chosen["paradigm"]]["score"], seed=seed)
        out.append(
            Recommendation(
                model=str(model),
                task_type=str(task_type),
                paradigm=str(chosen["paradigm"]),
                score=float(chosen["score"]),
                score_lo=lo,
                score_hi=hi,
                tokens_per_sample=float(chosen["tokens_per_sample"]),
                latency_s=float(chosen["latency_s"]),
                energy_per_sample_j=float(chosen["energy"]),
                confidence=confidence,
                text=_explain(chosen, best, stats, verdicts, confidence),
            )
        )
    return out


def _explain(
    chosen: pd.Series,
    best: pd.Series,
    stats: pd.DataFrame,
    verdicts: list[tuple[str, float, float, float, int]],
    confidence: str,
) -> str:
    name = str(chosen["paradigm"])
    parts = [
        f"{name}: score {chosen['score']:.2f} at {chosen['tokens_per_sample']:,.0f} tokens and "
        f"{chosen['latency_s']:.2f} s per sample."
    ]
    if name != best["paradigm"]:
        ratio = best["tokens_per_sample"] / max(chosen["tokens_per_sample"], 1e-9)
        parts.append(
            f"{best['paradigm']} scores {best['score']:.2f}, not a significant gain, "
            f"for {ratio:.1f}x the tokens."
        )
    for paradigm, diff, lo, hi, pairs in verdicts:
        if paradigm == name:
            continue
        cost = float(stats.loc[stats["paradigm"] == paradigm, "tokens_per_sample"].iloc[0])
        against = "below" if hi < 0 else "not shown different from"
        parts.append(
            f"{paradigm} vs {best['paradigm']}: {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] on {pairs} "
            f"shared samples ({against}), {cost:,.0f} tokens."
        )
    parts.append(
        {
            "clear": "Every other paradigm scores significantly lower.",
            "tied": "The cheapest of the paradigms statistically tied for the best score.",
            "too few samples": "Too few samples to tell paradigms apart: run more.",
        }[confidence]
    )
    return " ".join(parts)
