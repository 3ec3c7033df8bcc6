"""Aggregates of a run's results as pandas DataFrames, for the terminal, the report and notebooks.

NRQ follows the reference study: the relative gain of a paradigm's score over the base
paradigm's score, (S_paradigm - S_base) / S_base, computed per model and dataset and then
averaged. A base score under `floor` makes the ratio meaningless (it explodes towards
infinity); such pairs are flagged `base_near_zero` and left out of the averages.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from slmscope.analysis.stats import bootstrap_ci, macro_f1, mcc, mcnemar_exact, paired_bootstrap
from slmscope.paradigms.base import SEPARATOR
from slmscope.runs.records import RESULT_COLUMNS, STEP_COLUMNS, Record
from slmscope.runs.stores import Source, open_existing

GROUP = ["model", "paradigm", "dataset"]
LABEL_TYPES = ("sentiment", "classification", "stock_movement", "credit_scoring", "bankruptcy")
NRQ_FLOOR = 0.05


def frame(records: Sequence[Record], names: Sequence[str]) -> pd.DataFrame:
    """Records as a DataFrame whose columns are the record's fields, even when there are none."""
    return pd.DataFrame([dataclasses.asdict(r) for r in records], columns=list(names))


def load(run_dir: Source) -> pd.DataFrame:
    """The run's `results` table, one row per sample; with several agent harnesses, `paradigm`
    names the arm (see `arms`). Stale samples (their rows changed since) are left out."""
    store = open_existing(run_dir)
    try:
        return arms(frame([r for r in store.results() if not r.stale], RESULT_COLUMNS))
    finally:
        store.close()


def stale_count(run_dir: Source) -> int:
    """How many stored samples no longer match their data (left out of every table)."""
    store = open_existing(run_dir)
    try:
        return sum(r.stale for r in store.results())
    finally:
        store.close()


def load_runs(run_dir: Source) -> list[dict[str, Any]]:
    """The run directory's `runs` rows (one per invocation; a resumed run adds one)."""
    store = open_existing(run_dir)
    try:
        return store.runs()
    finally:
        store.close()


def load_steps(run_dir: Source) -> pd.DataFrame:
    """The run's `steps` table, one row per model call, labelled as `load` labels results."""
    store = open_existing(run_dir)
    try:
        stale = {r.cell_key for r in store.results() if r.stale}
        steps = [s for s in store.steps() if s.cell_key not in stale]
        return arms(frame(steps, STEP_COLUMNS))
    finally:
        store.close()


def arms(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with `paradigm` naming the arm where agents ran under several harnesses."""
    if frame.empty or "paradigm_name" in frame:
        return frame  # empty, or labelled already
    out = frame.copy()
    if "harness" not in out:
        out["harness"] = np.where(out["paradigm"] == "base", "none", "strict")
    out["paradigm_name"] = out["paradigm"]
    agent_harnesses = set(out.loc[out["harness"] != "none", "harness"])
    if len(agent_harnesses) > 1:
        agent = out["harness"] != "none"
        out.loc[agent, "paradigm"] = (
            out.loc[agent, "paradigm_name"] + SEPARATOR + out.loc[agent, "harness"].astype(str)
        )
    return out


def _label_metrics(group: pd.DataFrame) -> tuple[float, float]:
    if group["task_type"].iloc[0] not in LABEL_TYPES:
        return math.nan, math.nan
    gold = [str(g) for g in group["gold"]]
    predicted = [None if pd.isna(p) else str(p) for p in group["final_answer"]]
    f1 = macro_f1(predicted, gold)
    classes = sorted(set(gold) | {p for p in predicted if p is not None})
    return f1, (mcc(predicted, gold, classes[0]) if len(classes) == 2 else math.nan)


def summarize(results: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per model x paradigm x dataset: score with its 95% bootstrap interval, completion rate,
    tokens and latency (mean, p50, p95), macro-F1 and MCC for label tasks."""
    rows: list[dict[str, Any]] = []
    for (model, paradigm, dataset), group in results.groupby(GROUP, sort=False):
        scores = group["score"].to_numpy(float)
        ok = (group["outcome"] == "ok").to_numpy(float)
        tokens, latency = group["total_tokens"].to_numpy(float), group["latency_s"].to_numpy(float)
        f1, matthews = _label_metrics(group)
        score_lo, score_hi = bootstrap_ci(scores, seed=seed)
        ok_lo, ok_hi = bootstrap_ci(ok, seed=seed)
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "dataset": dataset,
                "task_type": group["task_type"].iloc[0],
                "n": len(group),
                "score": scores.mean(),
                "score_lo": score_lo,
                "score_hi": score_hi,
                "completion_rate": ok.mean(),
                "completion_lo": ok_lo,
                "completion_hi": ok_hi,
                "tokens_mean": tokens.mean(),
                "tokens_p50": np.percentile(tokens, 50),
                "tokens_p95": np.percentile(tokens, 95),
                "latency_mean": latency.mean(),
                "latency_p50": np.percentile(latency, 50),
                "latency_p95": np.percentile(latency, 95),
                "macro_f1": f1,
                "mcc": matthews,
            }
        )
    return pd.DataFrame(rows)


def nrq(summary: pd.DataFrame, *, floor: float = NRQ_FLOOR) -> pd.DataFrame:
    """NRQ per model x dataset x non-base paradigm, with the base score and the near-zero flag."""
    base = summary[summary["paradigm"] == "base"].set_index(["model", "dataset"])["score"]
    rows = []
    for row in summary[summary["paradigm"] != "base"].to_dict("records"):
        key = (row["model"], row["dataset"])
        if key not in base.index:
            continue
        b, score = float(base[key]), float(row["score"])
        near_zero = b < floor
        rows.append(
            {
                "model": row["model"],
                "dataset": row["dataset"],
                "paradigm": row["paradigm"],
                "base_score": b,
                "score": score,
                "base_near_zero": near_zero,
                "nrq": math.nan if near_zero else (score - b) / b,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["model", "dataset", "paradigm", "base_score", "score", "base_near_zero", "nrq"],
    )


def nrq_by_paradigm(summary: pd.DataFrame, *, floor: float = NRQ_FLOOR) -> pd.DataFrame:
    """NRQ averaged over models and datasets per paradigm (base is 0 by definition, where
    there is a score at all: served traffic has none)."""
    table = nrq(summary, floor=floor)
    base = 0.0 if summary["score"].notna().any() else math.nan
    rows = [{"paradigm": "base", "nrq": base, "pairs": 0, "flagged": 0}]
    for paradigm, group in table.groupby("paradigm", sort=False):
        usable = group[~group["base_near_zero"]]
        rows.append(
            {
                "paradigm": paradigm,
                "nrq": usable["nrq"].mean() if len(usable) else math.nan,
                "pairs": len(usable),
                "flagged": int(group["base_near_zero"].sum()),
            }
        )
    return pd.DataFrame(rows)


def composite_z(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean over datasets of each model x paradigm's score standardized within the dataset."""
    frame = summary[["model", "paradigm", "dataset", "score"]].copy()
    stats = frame.groupby("dataset")["score"].agg(["mean", "std"])
    std = frame["dataset"].map(stats["std"]).fillna(0.0)
    centered = frame["score"] - frame["dataset"].map(stats["mean"])
    frame["z"] = np.where(std > 0, centered / std.where(std > 0, 1.0), 0.0)
    out = frame.groupby(["model", "paradigm"], sort=False)["z"].agg(["mean", "count"])
    return out.rename(columns={"mean": "z", "count": "datasets"}).reset_index()


def compare(results: pd.DataFrame, a: str, b: str, *, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of paradigm b against a on the same samples, per model and dataset:
    mean difference with its 95% interval and p-value (paired bootstrap), and the exact
    McNemar test where both paradigms' scores are 0/1."""
    rows = []
    for (model, dataset), group in results.groupby(["model", "dataset"], sort=False):
        left = group[group["paradigm"] == a].set_index("sample_id")["score"]
        right = group[group["paradigm"] == b].set_index("sample_id")["score"]
        shared = left.index.intersection(right.index)
        if shared.empty:
            continue
        x, y = left[shared].to_numpy(float), right[shared].to_numpy(float)
        diff, lo, hi, p = paired_bootstrap(x, y, seed=seed)
        binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
        only_a, only_b, p_mcnemar = mcnemar_exact(x, y) if binary else (0, 0, math.nan)
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "a": a,
                "b": b,
                "pairs": len(shared),
                "diff": diff,
                "diff_lo": lo,
                "diff_hi": hi,
                "p_bootstrap": p,
                "only_a_right": only_a,
                "only_b_right": only_b,
                "p_mcnemar": p_mcnemar,
            }
        )
    return pd.DataFrame(rows)
