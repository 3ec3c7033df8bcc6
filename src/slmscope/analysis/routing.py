"""Fitting and judging a paradigm router (paradigms/router.py) on stored results, with no
model calls.

Every arm of a run has its outcome stored for the same samples, so a router's score and cost
on them follow exactly from its choices. The problems are read again from the run's own task
references (its spec), matched to the stored rows by their content fingerprint, so the router
sees what the model saw and never a gold. Cross-validation is by sample within each dataset
(`sample`: k folds, each dataset's samples spread over them) or by dataset (`dataset`: each
dataset scored by a router fitted on the others): no sample is ever scored by a router fitted
on it. The comparison puts the router beside every fixed arm and the oracle (the best arm per
sample, known only afterwards), with 95% intervals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from slmscope.analysis.stats import bootstrap_ci
from slmscope.analysis.tables import frame
from slmscope.errors import ConfigError, UserError
from slmscope.paradigms.base import arm_name
from slmscope.paradigms.router import (
    MIN_SUPPORT,
    CostName,
    Method,
    Objective,
    Router,
    Stored,
    feature_key,
    problem_features,
)
from slmscope.runs.records import RESULT_COLUMNS
from slmscope.runs.stores import Source, open_existing
from slmscope.tasks import load_tasks
from slmscope.tasks.record import Problem

CvMode = Literal["sample", "dataset"]
COST_COLUMN = {"tokens": "total_tokens", "latency": "latency_s", "energy": "energy_j"}
MIN_SAMPLES = 10  # samples every arm answered, below which a router is not fitted


@dataclass
class Samples:
    """The samples every arm answered, aligned: problems, and per arm score and cost."""

    problems: list[Problem]
    score: pd.DataFrame  # one row per problem, one column per arm
    cost: pd.DataFrame
    model: str
    runs: tuple[str, ...]

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.score.columns)

    def subset(self, rows: Sequence[int]) -> Samples:
        idx = list(rows)
        return Samples(
            [self.problems[i] for i in idx],
            self.score.iloc[idx].reset_index(drop=True),
            self.cost.iloc[idx].reset_index(drop=True),
            self.model,
            self.runs,
        )


def _problems(
    run_dir: Source, specs: Sequence[dict[str, Any]]
) -> dict[tuple[str, str, str], Problem]:
    """(dataset, id, fingerprint) → problem, read again from the runs' task references."""
    found: dict[tuple[str, str, str], Problem] = {}
    for spec in specs:
        data = Path(spec["data_dir"]) if spec.get("data_dir") else None
        for ref in spec.get("tasks", ()):
            try:
                loaded = load_tasks(
                    ref,
                    data_dir=data,
                    skip_bad_rows=bool(spec.get("skip_bad_rows")),
                    limit=spec.get("limit"),
                    seed=int(spec.get("seed", 0)),
                )
            except (UserError, OSError) as err:
                raise UserError(
                    f"{run_dir}: the run's tasks {ref!r} cannot be read again: {err}"
                ) from err
            for task in loaded.tasks:
                found[(task.dataset, task.id, task.fingerprint())] = task.problem
    return found


def load_samples(run_dir: Source, *, cost: str = "tokens", model: str | None = None) -> Samples:
    """The run's samples that every arm answered, or a UserError saying what is missing."""
    if cost not in COST_COLUMN:
        raise ConfigError(f"unknown cost {cost!r}; known: {', '.join(COST_COLUMN)}")
    store = open_existing(run_dir)
    try:
        results = frame([r for r in store.results() if not r.stale], RESULT_COLUMNS)
        runs = store.runs()
    finally:
        store.close()
    if results.empty:
        raise UserError(f"{run_dir}: no results to fit a router on")
    models = sorted(set(results["model"]))
    chosen = model or (models[0] if len(models) == 1 else None)
    if chosen is None or chosen not in models:
        raise ConfigError(
            f"{run_dir}: name one model with --model (the run has {', '.join(models)})"
        )
    results = results[results["model"] == chosen].copy()
    if results["score"].isna().all():
        raise UserError(
            f"{run_dir}: no sample of {chosen} has a score "
            "(served traffic has no reference to score against)"
        )
    results = results[results["score"].notna()].copy()
    results["content"] = results["content"].fillna("")  # stored before fingerprints
    results["arm"] = [
        arm_name(p, h) for p, h in zip(results["paradigm"], results["harness"], strict=True)
    ]
    column = COST_COLUMN[cost]
    if results[column].isna().all():
        raise UserError(f"{run_dir}: no sample has a measured {cost} cost")
    arms = sorted(set(results["arm"]))
    if len(arms) < 2:
        raise UserError(
            f"{run_dir}: a router needs two arms or more; the run has {', '.join(arms)}"
        )
    keyed = results.set_index(["dataset", "sample_id", "content", "arm"])
    score = keyed["score"].unstack("arm")
    spent = keyed[column].unstack("arm")
    complete = score.notna().all(axis=1) & spent.notna().all(axis=1)
    score, spent = score[complete], spent[complete]
    if len(score) < MIN_SAMPLES:
        raise UserError(
            f"{run_dir}: {len(score)} samples were answered by every arm ({', '.join(arms)}); "
            f"a router needs {MIN_SAMPLES}"
        )
    problems = _problems(run_dir, [json.loads(r["spec"]) for r in runs])
    unique = {(d, i): p for (d, i, _), p in problems.items()}  # rows without a fingerprint
    rows = []
    for dataset, sample_id, content in score.index:
        problem = problems.get((dataset, sample_id, content)) or (
            None if content else unique.get((dataset, sample_id))
        )
        if problem is None:
            raise UserError(
                f"{run_dir}: sample {dataset}/{sample_id} is no longer in its task files"
            )
        rows.append(problem)
    return Samples(
        rows,
        score.reset_index(drop=True)[arms],
        spent.reset_index(drop=True)[arms],
        chosen,
        tuple(r["run_id"] for r in runs),
    )


def _floats(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.items()}


def _best(objective: Objective, score: pd.DataFrame, cost: pd.DataFrame) -> str:
    return objective.pick(_floats(score.mean()), _floats(cost.mean()))


def fit(samples: Samples, method: Method, objective: Objective, *, k: int = 10) -> Router:
    """A router fitted on these samples (their scores are the training signal; what it
    keeps of a problem is its text and features, never its gold)."""
    types = pd.Series([p.task_type for p in samples.problems])
    keys = pd.Series([feature_key(problem_features(p)) for p in samples.problems])
    by_type = {
        t: _best(objective, samples.score[types == t], samples.cost[types == t])
        for t in sorted(set(types))
    }
    by_key = {
        key: _best(objective, samples.score[keys == key], samples.cost[keys == key])
        for key in sorted(set(keys))
        if (keys == key).sum() >= MIN_SUPPORT
    }
    stored = tuple(
        Stored(p.text(), p.task_type, _floats(samples.score.iloc[i]), _floats(samples.cost.iloc[i]))
        for i, p in enumerate(samples.problems)
    )
    return Router(
        method=method,
        objective=objective,
        arms=samples.arms,
        fixed=_best(objective, samples.score, samples.cost),
        model=samples.model,
        runs=samples.runs,
        by_type=by_type if method != "knn" else {},
        by_key=by_key if method == "features" else {},
        stored=stored if method == "knn" else (),
        k=k,
    )


def _folds(samples: Samples, mode: CvMode, n_folds: int, seed: int) -> list[list[int]]:
    datasets = [p.dataset for p in samples.problems]
    if mode == "dataset":
        return [[i for i, d in enumerate(datasets) if d == name] for name in sorted(set(datasets))]
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for name in sorted(set(datasets)):
        members = [i for i, d in enumerate(datasets) if d == name]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[j % n_folds].append(int(i))
    return [f for f in folds if f]


def cross_choices(
    samples: Samples,
    method: Method,
    objective: Objective,
    *,
    mode: CvMode = "sample",
    n_folds: int = 5,
    k: int = 10,
    seed: int = 0,
) -> list[str]:
    """The arm chosen for each sample by a router fitted without it (out of fold)."""
    chosen = [""] * len(samples.problems)
    everyone = set(range(len(samples.problems)))
    for fold in _folds(samples, mode, n_folds, seed):
        train = sorted(everyone - set(fold))
        if not train:
            raise UserError("cross-validation by dataset needs two datasets or more")
        router = fit(samples.subset(train), method, objective, k=k)
        for i in fold:
            chosen[i] = router.choose(samples.problems[i])
    return chosen


def _row(name: str, score: np.ndarray, cost: np.ndarray, seed: int) -> dict[str, Any]:
    s_lo, s_hi = bootstrap_ci(score, seed=seed)
    c_lo, c_hi = bootstrap_ci(cost, seed=seed)
    return {
        "policy": name,
        "score": float(score.mean()),
        "score_lo": s_lo,
        "score_hi": s_hi,
        "cost": float(cost.mean()),
        "cost_lo": c_lo,
        "cost_hi": c_hi,
    }


def outcome_of(samples: Samples, chosen: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample score and cost of following `chosen` (one arm per sample)."""
    rows = np.arange(len(chosen))
    cols = [samples.arms.index(a) for a in chosen]
    return samples.score.to_numpy(float)[rows, cols], samples.cost.to_numpy(float)[rows, cols]


def oracle_choices(samples: Samples, objective: Objective) -> list[str]:
    """The best arm per sample, known only afterwards."""
    return [
        objective.pick(_floats(samples.score.iloc[i]), _floats(samples.cost.iloc[i]))
        for i in range(len(samples.problems))
    ]


def dataset_choices(samples: Samples, objective: Objective) -> list[str]:
    """The best arm per dataset, known only afterwards: the most a router that tells datasets
    apart could do. (The oracle, best per sample, also wins where arms answer one label to
    every sample and picks the one that matches each gold: no router could.)"""
    datasets = pd.Series([p.dataset for p in samples.problems])
    best = {
        d: _best(objective, samples.score[datasets == d], samples.cost[datasets == d])
        for d in sorted(set(datasets))
    }
    return [best[d] for d in datasets]


def comparison(
    samples: Samples, chosen: Sequence[str], objective: Objective, *, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The router against every fixed arm and the oracle: score and cost with 95% intervals;
    and the share of the oracle gap it closes, (router - best fixed) / (oracle - best fixed),
    best fixed being the objective's choice over all samples; and the same against the best
    arm per dataset (`dataset_oracle`, `dataset_gap_closed`)."""
    rows = [_row("router", *outcome_of(samples, chosen), seed)]
    for arm in samples.arms:
        rows.append(_row(arm, *outcome_of(samples, [arm] * len(chosen)), seed))
    rows.append(_row("oracle", *outcome_of(samples, oracle_choices(samples, objective)), seed))
    best = _best(objective, samples.score, samples.cost)
    by = {str(r["policy"]): float(r["score"]) for r in rows}
    gap = by["oracle"] - by[best]
    closed = (by["router"] - by[best]) / gap if gap > 0 else math.nan
    per_dataset = float(outcome_of(samples, dataset_choices(samples, objective))[0].mean())
    gap = per_dataset - by[best]
    return pd.DataFrame(rows), {
        "best_fixed": best,
        "gap_closed": closed,
        "dataset_oracle": per_dataset,
        "dataset_gap_closed": (by["router"] - by[best]) / gap if gap > 0 else math.nan,
    }


def cost_at_equal_quality(
    samples: Samples,
    method: Method,
    *,
    cost: CostName = "tokens",
    mode: CvMode = "sample",
    n_folds: int = 5,
    k: int = 10,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The cheapest cross-validated router (score - lambda x cost, over a grid of lambda)
    whose score is at least the best fixed arm's: its lambda, score, cost and the share of
    the best fixed arm's cost it saves. None where no setting reaches that score."""
    plain = Objective()
    best = _best(plain, samples.score, samples.cost)
    best_score, best_cost = samples.score[best].mean(), samples.cost[best].mean()
    unit = 1.0 / max(float(np.median(samples.cost.to_numpy(float))), 1e-9)
    found: dict[str, Any] | None = None
    for step in (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0):
        objective = Objective("tradeoff", cost, lam=step * unit)
        chosen = cross_choices(
            samples, method, objective, mode=mode, n_folds=n_folds, k=k, seed=seed
        )
        score, spent = outcome_of(samples, chosen)
        if score.mean() >= best_score - 1e-12 and (found is None or spent.mean() < found["cost"]):
            found = {
                "lam": step * unit,
                "score": float(score.mean()),
                "cost": float(spent.mean()),
                "best_fixed": best,
                "saved": float(1 - spent.mean() / best_cost) if best_cost > 0 else math.nan,
            }
    return found
