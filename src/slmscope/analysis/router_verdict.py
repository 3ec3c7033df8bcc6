"""The verdict on a paradigm router fitted on a run's own stored results: the router, judged
out of fold, against every fixed arm and the oracle, with the share of the oracle gap it
closes and the cost it saves at the best fixed arm's score.

`slmscope route fit` prints it for both cross-validations (analysis/routing.py); the report
shows it per model for one of them (by sample within datasets, `route fit`'s defaults, a fixed
seed) and puts the router and the oracle on the frontier beside the arms. Where no router can
be judged (fewer than two arms on the same samples, too few samples, served traffic without a
score, problems that cannot be read again) the refusal's reason is kept in one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from slmscope.analysis.routing import (
    CvMode,
    Samples,
    comparison,
    cost_at_equal_quality,
    cross_choices,
    load_samples,
)
from slmscope.analysis.tables import arms
from slmscope.errors import UserError
from slmscope.paradigms.base import arm_name
from slmscope.paradigms.router import CostName, Method, Objective
from slmscope.runs.store_pg import redacted
from slmscope.runs.stores import Source

METHOD: Method = "knn"  # route fit's default method
FOLDS = 5  # route fit's default folds of the cross-validation by sample
NEIGHBOURS = 10  # route fit's default k
ROUTER, ORACLE = "router (cross-validated)", "oracle"  # the two policies beside the arms
JUDGED = (
    "k-nearest-neighbour router over the stored problems, cross-validated by sample within "
    "datasets; the oracle knows each sample's best arm only afterwards"
)


@dataclass(frozen=True)
class Verdict:
    """A router judged on one model's samples (those every arm answered)."""

    model: str
    samples: int
    arms: tuple[str, ...]
    cost: CostName
    rows: pd.DataFrame  # comparison(): router, each fixed arm, oracle; score and cost with CIs
    best_fixed: str
    gap_closed: float  # (router - best fixed) / (oracle - best fixed); NaN where no gap
    dataset_oracle: float  # the score of the best arm per dataset, chosen afterwards
    dataset_gap_closed: float  # (router - best fixed) / (dataset_oracle - best fixed)
    saved: dict[str, Any] | None  # cost_at_equal_quality(), None where no setting reaches it

    def records(self) -> list[dict[str, Any]]:
        """The rows, each with its display name (`router (cross-validated)`, an arm, `oracle`),
        its kind (router, arm, oracle) and whether it is the best fixed arm."""
        out: list[dict[str, Any]] = []
        for n, row in enumerate(self.rows.to_dict("records")):
            kind = "router" if n == 0 else "oracle" if n == len(self.rows) - 1 else "arm"
            name = {"router": ROUTER, "oracle": ORACLE}.get(kind, str(row["policy"]))
            best = kind == "arm" and row["policy"] == self.best_fixed
            out.append({**{str(k): v for k, v in row.items()}, "name": name, "kind": kind})
            out[-1]["best_fixed"] = best
        return out

    def renamed(self, labels: Mapping[str, str]) -> Verdict:
        """The verdict with its arms named by `labels` (the others as they were)."""

        def name(arm: str) -> str:
            return labels.get(arm, arm)

        rows = self.rows.copy()
        policy = [str(a) for a in rows["policy"]]  # router, the arms, oracle
        rows["policy"] = policy[:1] + [name(a) for a in policy[1:-1]] + policy[-1:]
        saved = (
            None
            if self.saved is None
            else {**self.saved, "best_fixed": name(self.saved["best_fixed"])}
        )
        return replace(
            self,
            arms=tuple(name(a) for a in self.arms),
            rows=rows,
            best_fixed=name(self.best_fixed),
            saved=saved,
        )

    def score_of(self, kind: str, arm: str | None = None) -> float:
        """The mean score of the router, the oracle, or (kind `arm`) the named arm."""
        for row in self.records():
            if row["kind"] == kind and (arm is None or row["policy"] == arm):
                return float(row["score"])
        raise KeyError(arm or kind)


@dataclass(frozen=True)
class Refused:
    """A model of the run on which no router could be judged, and why."""

    model: str
    reason: str


Figures = Verdict | Refused


def judge(
    samples: Samples,
    method: Method,
    objective: Objective,
    *,
    mode: CvMode = "sample",
    n_folds: int = FOLDS,
    k: int = NEIGHBOURS,
    seed: int = 0,
) -> Verdict:
    """The router cross-validated on these samples against every fixed arm and the oracle.
    Raises UserError where the cross-validation cannot be made (by dataset, one dataset)."""
    chosen = cross_choices(samples, method, objective, mode=mode, n_folds=n_folds, k=k, seed=seed)
    rows, info = comparison(samples, chosen, objective, seed=seed)
    saved = cost_at_equal_quality(
        samples, method, cost=objective.cost, mode=mode, n_folds=n_folds, k=k, seed=seed
    )
    return Verdict(
        model=samples.model,
        samples=len(samples.problems),
        arms=samples.arms,
        cost=objective.cost,
        rows=rows,
        best_fixed=str(info["best_fixed"]),
        gap_closed=float(info["gap_closed"]),
        dataset_oracle=float(info["dataset_oracle"]),
        dataset_gap_closed=float(info["dataset_gap_closed"]),
        saved=saved,
    )


def number(value: float | None, digits: int = 2) -> str:
    """A figure as the router's tables show it: `-` where there is none."""
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def saved_text(verdict: Verdict) -> str:
    """The cost at the best fixed arm's score, in words."""
    saved = verdict.saved
    if saved is None:
        return "no router setting reaches the best fixed arm's score at a lower cost"
    return (
        f"at the best fixed arm's score ({saved['best_fixed']}): {number(saved['cost'], 1)} "
        f"{verdict.cost} a sample, {number(100 * saved['saved'], 0)}% saved "
        f"(lambda {saved['lam']:.3g})"
    )


def _reason(err: UserError, source: Source) -> str:
    """The refusal in one line, without the run's name (the report names it) or a password."""
    shown = redacted(str(source))
    text = " ".join(str(err).split()).removeprefix(f"{source}: ")
    return text.replace(str(source), shown)


def arm_labels(results: pd.DataFrame) -> dict[str, str]:
    """Each arm's name as the router gives it (`single·act`) → as the run's tables give it
    (`single`, where every agent ran under one harness; see tables.arms)."""
    if results.empty:
        return {}
    named = arms(results)
    return {
        arm_name(str(p), str(h)): str(t)
        for p, h, t in zip(named["paradigm_name"], named["harness"], named["paradigm"], strict=True)
    }


def router_figures(source: Source, results: pd.DataFrame, *, seed: int = 0) -> list[Figures]:
    """Per model of the run (`results`: its table, as tables.load reads it): the router (knn,
    best score, tokens as the cost, cross-validated by sample within datasets, with the
    folds and neighbours `route fit` takes by default) judged against the fixed arms and the
    oracle, its arms named as the run's tables name them; or the reason it cannot be."""
    objective = Objective()
    labels = arm_labels(results)
    out: list[Figures] = []
    for model in dict.fromkeys(results["model"]) if len(results) else ():
        try:
            samples = load_samples(source, cost=objective.cost, model=str(model))
            verdict = judge(samples, METHOD, objective, seed=seed)
        except UserError as err:
            out.append(Refused(str(model), _reason(err, source)))
            continue
        out.append(verdict.renamed(labels))
    return out
