"""Whether the agents were agents, and whether a verdict is a label prior.

`tool_use` measures, per arm with tools (`tools_offered > 0`: base and rows stored before tool
use was counted have none), how often the agent acted at all, how many calls it made, how
many of them failed, whether its answer drew on what a tool returned, and the score of the
samples that acted against those that did not (different samples: an association, not an
effect). `idle_arms` names the arms that acted on fewer than a fifth of their samples: such an
arm behaved as the base model with a longer prompt, and its verdict is not about the paradigm.

`priors` sets each arm's score per dataset beside the share of its most frequent answer and
the scores of a constant answer (the majority class) and of a guess (chance); `prior_pairs`
names the pairs of arms that both answered (nearly) one label: their difference is a label
prior, not a paradigm effect.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from slmscope.analysis.stats import bootstrap_ci, bootstrap_diff
from slmscope.analysis.tables import arms
from slmscope.paradigms.base import arm_name

IDLE_SHARE = 0.2  # an arm acting on fewer than a fifth of its samples did not act
CONSTANT_SHARE = 0.9  # one answer to at least this share of (at least 3) samples: a constant
CONSTANT_MIN_N = 3
CHANCE_MAX_CLASSES = 10  # more distinct golds than this: not a label task, no chance score
NO_ANSWER = "(none)"

TOOL_USE_COLUMNS = [
    "model", "paradigm", "paradigm_name", "harness", "n",
    "n_acted", "acted", "acted_lo", "acted_hi",
    "calls_per_sample", "handoffs_per_sample", "tool_error_rate", "observed",
    "copies_per_sample", "cut_turns", "cut_actions", "repeated_cuts", "closed_turns", "score",
    "score_acted", "n_not_acted", "score_not_acted", "acted_diff", "acted_diff_lo", "acted_diff_hi",
]  # fmt: skip
PRIOR_COLUMNS = [
    "model", "paradigm", "dataset", "n", "top_answer", "top_count", "top_share", "score",
    "majority_gold", "majority_score", "classes", "chance_score", "constant", "note",
]  # fmt: skip
GROUP_KEYS = ["model", "paradigm", "dataset"]
TOOL_FIELDS = ("tools_offered", "tool_calls", "tool_errors", "handoffs", "acted", "observed")
CUT_FIELDS = ("cut_turns", "cut_actions", "repeated_cuts", "closed_turns")  # 0 in older rows


def _mean(values: pd.Series) -> float:
    return float(values.astype(float).mean()) if len(values) else math.nan


def tool_use(results: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per model x arm with tools: n; the share of samples that acted (`acted`, with its 95%
    bootstrap interval `acted_lo`/`acted_hi`, and `n_acted`); calls per sample (tool calls and
    hand-offs); hand-offs per sample; the tool error rate (errors over tool calls, NaN without
    calls); the share of samples whose answer drew on an observation (`observed`); copies of
    the prompt's example per sample; the turns the token budget reached, summed (`cut_turns`,
    of them `cut_actions`, the same cut action again `repeated_cuts`, and `closed_turns` the
    grammar closed in time); the score; the score of the samples that acted and of
    those that did not (`score_acted`, `score_not_acted`, with `n_acted`, `n_not_acted`), and
    `acted_diff` (acted minus not) with an unpaired bootstrap interval where each side has at
    least 2 samples."""
    if results.empty or any(f not in results for f in TOOL_FIELDS):
        return pd.DataFrame(columns=TOOL_USE_COLUMNS)
    frame = arms(results)
    frame = frame[frame["tools_offered"].fillna(0).astype(int) > 0]
    rows: list[dict[str, Any]] = []
    for (model, paradigm), group in frame.groupby(["model", "paradigm"], sort=False):
        acted = group["acted"].fillna(False).astype(bool)
        share_lo, share_hi = bootstrap_ci(acted.to_numpy(float), seed=seed)
        calls = int(group["tool_calls"].sum())
        handoffs = group["handoffs"].fillna(0).astype(float)
        copies = group["copies"] if "copies" in group else pd.Series(0.0, index=group.index)
        did, did_not = group.loc[acted, "score"], group.loc[~acted, "score"]
        diff = (math.nan,) * 3
        if len(did) >= 2 and len(did_not) >= 2:
            diff = bootstrap_diff(did_not.to_numpy(float), did.to_numpy(float), seed=seed)
        elif len(did) and len(did_not):  # a difference, too few samples for an interval
            diff = (_mean(did) - _mean(did_not), math.nan, math.nan)
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "paradigm_name": group["paradigm_name"].iloc[0],
                "harness": group["harness"].iloc[0],
                "n": len(group),
                "n_acted": int(acted.sum()),
                "acted": _mean(acted),
                "acted_lo": share_lo,
                "acted_hi": share_hi,
                "calls_per_sample": _mean(group["tool_calls"].fillna(0) + handoffs),
                "handoffs_per_sample": _mean(handoffs),
                "tool_error_rate": float(group["tool_errors"].sum()) / calls if calls else math.nan,
                "observed": _mean(group["observed"].fillna(False).astype(bool)),
                "copies_per_sample": _mean(copies.fillna(0)),
                **{f: int(group[f].fillna(0).sum()) if f in group else 0 for f in CUT_FIELDS},
                "score": _mean(group["score"]),
                "score_acted": _mean(did),
                "n_not_acted": len(did_not),
                "score_not_acted": _mean(did_not),
                "acted_diff": diff[0],
                "acted_diff_lo": diff[1],
                "acted_diff_hi": diff[2],
            }
        )
    return pd.DataFrame(rows, columns=TOOL_USE_COLUMNS)


def idle_arms(table: pd.DataFrame, threshold: float = IDLE_SHARE) -> list[dict[str, Any]]:
    """The arms of a `tool_use` table whose acted share is under `threshold` (a fifth), each
    with a one-sentence warning (`text`)."""
    several = table["model"].nunique() > 1 if len(table) else False
    found = []
    for row in table.to_dict("records"):
        if not row["acted"] < threshold:
            continue
        arm = arm_name(row["paradigm_name"], row["harness"])
        who = f"{arm} ({row['model']})" if several else arm
        found.append(
            {
                "model": row["model"],
                "paradigm": row["paradigm"],
                "n": row["n"],
                "n_acted": row["n_acted"],
                "acted": row["acted"],
                "text": f"{who} acted on {row['n_acted']} of {row['n']} samples: it behaved as "
                "the base model with a longer prompt, and its verdict is not about the paradigm.",
            }
        )
    return found


def normalised(values: pd.Series) -> pd.Series:
    """Answers (or golds) as compared for priors: stripped, lower-case; none is `(none)`."""
    return values.map(lambda v: NO_ANSWER if v is None or pd.isna(v) else str(v).strip().lower())


def _quoted(answer: str, limit: int = 60) -> str:
    shown = answer if len(answer) <= limit else answer[:limit] + "..."
    return f"`{shown}`"


def priors(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x arm x dataset (base too): n; the most frequent normalised answer
    (`top_answer`; no answer counts as `(none)`), its count and share; the arm's mean score;
    the dataset's most frequent normalised gold (`majority_gold`, over its distinct samples)
    and the share of the arm's samples whose gold it is (`majority_score`: what answering it
    every time scores under exact match); the number of distinct golds (`classes`) and the
    chance score 1/classes (NaN above 10 classes); `constant` (at least 3 samples, one answer
    to at least 90% of them, and it is an answer); and a `note` for a constant."""
    if results.empty:
        return pd.DataFrame(columns=PRIOR_COLUMNS)
    frame = arms(results)
    frame = frame.assign(_answer=normalised(frame["final_answer"]), _gold=normalised(frame["gold"]))
    golds: dict[str, tuple[str, int]] = {}
    for name, part in frame.groupby("dataset", sort=False):
        counts = Counter(str(g) for g in part.drop_duplicates(["sample_id"])["_gold"])
        top = max(sorted(counts), key=lambda g: counts[g])  # ties: the first in sort order
        golds[str(name)] = (top, len(counts))
    rows: list[dict[str, Any]] = []
    for (model, paradigm, dataset), group in frame.groupby(GROUP_KEYS, sort=False):
        answers = Counter(str(a) for a in group["_answer"])
        top_answer, top_count = answers.most_common(1)[0]
        n = len(group)
        majority, classes = golds[str(dataset)]
        constant = n >= CONSTANT_MIN_N and top_count / n >= CONSTANT_SHARE
        constant = constant and top_answer != NO_ANSWER
        rows.append(
            {
                "model": model,
                "paradigm": paradigm,
                "dataset": dataset,
                "n": n,
                "top_answer": top_answer,
                "top_count": top_count,
                "top_share": top_count / n,
                "score": _mean(group["score"]),
                "majority_gold": majority,
                "majority_score": float(np.mean(group["_gold"] == majority)),
                "classes": classes,
                "chance_score": 1 / classes if classes <= CHANCE_MAX_CLASSES else math.nan,
                "constant": constant,
                "note": f"answered {_quoted(top_answer)} to {top_count} of {n}: a constant"
                if constant
                else "",
            }
        )
    return pd.DataFrame(rows, columns=PRIOR_COLUMNS)


def prior_pairs(priors_df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per model x dataset, each pair of arms that both answered a constant: their (paired)
    score difference is a label prior, not a paradigm effect. Each pair: model, dataset, arms,
    answers, scores and a `text` that says so."""
    if priors_df.empty:
        return []
    several = priors_df["model"].nunique() > 1
    found = []
    constants = priors_df[priors_df["constant"].astype(bool)]
    for (model, dataset), group in constants.groupby(["model", "dataset"], sort=False):
        for a, b in itertools.combinations(group.to_dict("records"), 2):
            where = f"{dataset} ({model})" if several else str(dataset)
            text = (
                f"{a['paradigm']} answered {_quoted(a['top_answer'])} to {a['top_count']} of "
                f"{a['n']} and {b['paradigm']} {_quoted(b['top_answer'])} to {b['top_count']} "
                f"of {b['n']}: the difference between {a['paradigm']} and {b['paradigm']} on "
                f"{where} ({a['score']:.2f} against {b['score']:.2f}) is a label prior, "
                "not a paradigm effect."
            )
            found.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "arms": (a["paradigm"], b["paradigm"]),
                    "answers": (a["top_answer"], b["top_answer"]),
                    "scores": (a["score"], b["score"]),
                    "text": text,
                }
            )
    return found


def prior_texts(pairs: list[dict[str, Any]]) -> list[str]:
    """The pairs of `prior_pairs` in words, one sentence per model x dataset: a single pair's
    own text, or for several pairs one sentence naming all the arms concerned."""
    grouped: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for pair in pairs:
        grouped.setdefault((pair["model"], pair["dataset"]), []).append(pair)
    several = len({model for model, _ in grouped}) > 1
    texts = []
    for (model, dataset), found in grouped.items():
        if len(found) == 1:
            texts.append(found[0]["text"])
            continue
        names = list(dict.fromkeys(arm for pair in found for arm in pair["arms"]))
        where = f"{dataset} ({model})" if several else str(dataset)
        texts.append(
            f"on {where}, {', '.join(names[:-1])} and {names[-1]} each answered one label: "
            "the differences between them are label priors, not paradigm effects."
        )
    return texts
