"""A paradigm router: picks the arm (a paradigm with its harness) that answers a request.

It is fitted on a run's stored results (analysis/routing.py) and decides from what the model
would see, never from a gold: the task type where a request declares it, features of the
problem text (its length, a table, choices, the share of digits), and the stored problems
nearest to it by BM25 similarity, each with what every arm scored on it and cost.

Three methods, from the coarsest: `type` (the best arm per task type), `features` (the best
arm per feature key, backing off to the task type, then to the best fixed arm, where a key
has too few stored samples) and `knn` (the best arm over the k nearest stored problems of the
same task type, or of any type where the request declares none or its type was never
stored). "Best" is the objective's: the highest mean score; the highest mean score among arms
whose mean cost fits a per-sample budget (else the cheapest); or the highest mean of
score - lambda x cost.

A router is saved as a small versioned JSON file naming the runs it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from slmscope.errors import ConfigError
from slmscope.tasks.record import Problem

ROUTER_FORMAT = 1
Method = Literal["type", "features", "knn"]
METHODS: tuple[str, ...] = ("type", "features", "knn")
CostName = Literal["tokens", "latency", "energy"]
COSTS: tuple[str, ...] = ("tokens", "latency", "energy")
MIN_SUPPORT = 3  # stored samples a feature key needs before it decides on its own


@dataclass(frozen=True)
class Objective:
    """What the router maximises per sample: `score`; `budget` (the best score among arms
    whose mean `cost` is at most `limit`, else the cheapest arm); or `tradeoff`
    (score - `lam` x `cost`, the cost in tokens, seconds or joules)."""

    kind: Literal["score", "budget", "tradeoff"] = "score"
    cost: CostName = "tokens"
    limit: float | None = None
    lam: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("score", "budget", "tradeoff"):
            raise ConfigError(f"unknown objective {self.kind!r}; known: score, budget, tradeoff")
        if self.cost not in COSTS:
            raise ConfigError(f"unknown cost {self.cost!r}; known: {', '.join(COSTS)}")
        if self.kind == "budget" and (self.limit is None or self.limit <= 0):
            raise ConfigError("a budget objective needs a positive per-sample limit")
        if self.lam < 0:
            raise ConfigError("the trade-off weight λ cannot be negative")

    def pick(self, score: Mapping[str, float], cost: Mapping[str, float]) -> str:
        """The best arm given each arm's (mean) score and cost; ties go to the cheaper arm,
        then to the first name."""
        arms = sorted(score, key=lambda a: (cost[a], a))
        if self.kind == "budget":
            assert self.limit is not None
            fits = [a for a in arms if cost[a] <= self.limit]
            if not fits:
                return arms[0]
            arms = fits
        lam = self.lam if self.kind == "tradeoff" else 0.0
        return max(arms, key=lambda a: score[a] - lam * cost[a])  # max keeps the first of ties

    def describe(self) -> str:
        if self.kind == "budget":
            return f"best score with {self.cost} <= {self.limit:g} a sample"
        if self.kind == "tradeoff":
            return f"score - {self.lam:g} x {self.cost}"
        return "best score"


def problem_features(problem: Problem) -> dict[str, Any]:
    """What the router reads of a problem: all of it is shown to the model."""
    text = problem.text()
    digits = sum(c.isdigit() for c in text)
    table = bool(re.search(r"(?m)^\s*\|.*\|\s*$", text)) or (text.count(",") >= 8 and digits > 20)
    return {
        "task_type": problem.task_type,
        "length": len(text),
        "table": table,
        "choices": bool(problem.choices),
        "digits": digits / max(1, len(text)),
    }


def feature_key(features: Mapping[str, Any]) -> str:
    """A coarse key of the features: task type, table, choices, long or short, digit-heavy."""
    return "|".join(
        [
            str(features["task_type"]),
            "table" if features["table"] else "text",
            "choices" if features["choices"] else "open",
            "long" if features["length"] > 600 else "short",
            "digits" if features["digits"] > 0.05 else "words",
        ]
    )


@dataclass(frozen=True)
class Stored:
    """One stored problem the `knn` method compares against, with each arm's outcome."""

    text: str
    task_type: str
    score: dict[str, float]
    cost: dict[str, float]


@dataclass
class Router:
    """A fitted router (see the module docstring)."""

    method: Method
    objective: Objective
    arms: tuple[str, ...]
    fixed: str  # the best fixed arm of the fit: the answer where nothing else decides
    model: str = ""
    runs: tuple[str, ...] = ()
    by_type: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    stored: tuple[Stored, ...] = ()
    k: int = 10
    _index: Any = field(default=None, repr=False, compare=False)

    def choose(self, problem: Problem, *, declared_type: bool = True) -> str:
        """The arm for this problem. `declared_type`: whether the request said its task type
        (a request from outside may not; then the `type` and `features` methods use the
        best fixed arm, and `knn` compares with every stored problem)."""
        if self.method == "type":
            return self.by_type.get(problem.task_type, self.fixed) if declared_type else self.fixed
        if self.method == "features":
            if not declared_type:
                return self.fixed
            key = feature_key(problem_features(problem))
            return self.by_key.get(key, self.by_type.get(problem.task_type, self.fixed))
        return self._nearest(problem, declared_type)

    def _nearest(self, problem: Problem, declared_type: bool) -> str:
        import bm25s

        if not self.stored:
            return self.fixed
        if self._index is None:
            self._index = bm25s.BM25()
            corpus = [s.text for s in self.stored]
            self._index.index(
                bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
            )
        tokens = bm25s.tokenize([problem.text()], stopwords="en", show_progress=False)
        if not any(tokens.ids):
            return self.fixed
        ids, scores = self._index.retrieve(tokens, k=len(self.stored), show_progress=False)
        ranked = [self.stored[int(i)] for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
        same = [s for s in ranked if s.task_type == problem.task_type] if declared_type else []
        near = (same or ranked)[: self.k]  # a task type never stored: the nearest of any
        if not near:
            return self.fixed
        score = {a: sum(s.score[a] for s in near) / len(near) for a in self.arms}
        cost = {a: sum(s.cost[a] for s in near) / len(near) for a in self.arms}
        return self.objective.pick(score, cost)

    def to_json(self) -> str:
        body = {
            "format": ROUTER_FORMAT,
            "method": self.method,
            "objective": asdict(self.objective),
            "arms": list(self.arms),
            "fixed": self.fixed,
            "model": self.model,
            "runs": list(self.runs),
            "features": ["task_type", "length", "table", "choices", "digits", "bm25 neighbours"],
            "by_type": self.by_type,
            "by_key": self.by_key,
            "k": self.k,
            "stored": [asdict(s) for s in self.stored],
        }
        return json.dumps(body, indent=1, ensure_ascii=False)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")


def load_router(path: Path) -> Router:
    """A saved router, or a ConfigError naming the file and what is wrong with it."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a router file ({err})") from err
    if not isinstance(body, dict) or body.get("format") != ROUTER_FORMAT:
        raise ConfigError(f"{path}: not a router file of format {ROUTER_FORMAT}")
    try:
        router = Router(
            method=body["method"],
            objective=Objective(**body["objective"]),
            arms=tuple(body["arms"]),
            fixed=body["fixed"],
            model=body.get("model", ""),
            runs=tuple(body.get("runs", ())),
            by_type=dict(body.get("by_type", {})),
            by_key=dict(body.get("by_key", {})),
            stored=tuple(Stored(**s) for s in body.get("stored", ())),
            k=int(body.get("k", 10)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: a router field is missing or malformed ({err})") from err
    if router.method not in METHODS or router.fixed not in router.arms:
        raise ConfigError(f"{path}: unknown method {router.method!r} or fixed arm {router.fixed!r}")
    return router
