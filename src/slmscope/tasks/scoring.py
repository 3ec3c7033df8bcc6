"""Scorers (answer, task) -> score in [0, 1]: they alone read the gold."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from slmscope.tasks.labels import match_label, normalize_label, parse_entities
from slmscope.tasks.numeric import parse_numbers
from slmscope.tasks.qa_metric import answer_items, normalize, qa_f1
from slmscope.tasks.record import Task

# --- labels -----------------------------------------------------------------------------------


def label_accuracy(answer: str, task: Task) -> float:
    chosen = match_label(answer, task.choices) if task.choices else answer
    return float(chosen is not None and normalize_label(chosen) == normalize_label(task.gold))


# --- numbers ----------------------------------------------------------------------------------


def _close(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)


def numeric_match(answer: str, task: Task, rel_tol: float = 0.01) -> float:
    """1 when the answer's number equals the gold within `rel_tol`; percent and fraction agree."""
    gold_norm = normalize_label(task.gold)
    if gold_norm in ("yes", "no"):
        return float(normalize_label(answer).split(" ")[:1] == [gold_norm])
    golds, answers = parse_numbers(task.gold), parse_numbers(answer)
    if not golds or not answers:
        return 0.0
    gold, got = golds[0], answers[-1]
    candidates = [got.value]
    if got.percent or gold.percent or "%" in task.prompt or "percent" in task.prompt.lower():
        candidates += [got.value * 100, got.value / 100]
    return float(any(_close(c, gold.value, rel_tol) for c in candidates))


# --- entities ---------------------------------------------------------------------------------


def entity_f1(answer: str, task: Task) -> float:
    """Entity-level F1: entity text and type must both match; order-free, duplicates counted."""
    got, gold = parse_entities(answer), parse_entities(task.gold)
    if not gold:
        return float(not got)
    return _f1(sum((got & gold).values()), sum(got.values()), sum(gold.values()))


# --- summaries --------------------------------------------------------------------------------


def _f1(overlap: int, predicted: int, reference: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def _words(text: str) -> list[str]:
    return normalize_label(text).split()


def rouge_n(answer: str, reference: str, n: int) -> float:
    """ROUGE-N F1 over lower-cased word n-grams (clipped counts)."""
    a, r = _words(answer), _words(reference)
    grams_a = Counter(tuple(a[i : i + n]) for i in range(len(a) - n + 1))
    grams_r = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
    if not grams_a or not grams_r:
        return 0.0
    return _f1(sum((grams_a & grams_r).values()), sum(grams_a.values()), sum(grams_r.values()))


def rouge_lcs(answer: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased words (longest common subsequence)."""
    a, g = _words(answer), _words(reference)
    if not a or not g:
        return 0.0
    prev = [0] * (len(g) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(g, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return _f1(prev[-1], len(a), len(g))


def rouge1(answer: str, task: Task) -> float:
    return rouge_n(answer, task.gold, 1)


def rouge2(answer: str, task: Task) -> float:
    return rouge_n(answer, task.gold, 2)


def rouge_l(answer: str, task: Task) -> float:
    return rouge_lcs(answer, task.gold)


def qa_span_f1(answer: str, task: Task) -> float:
    """Token F1 for a QA gold that is not one number: text spans, several values."""
    return qa_f1(answer, task.gold)


def is_single_number(gold: str) -> bool:
    """A QA gold that the numeric scorer can read: one number (or yes/no) and nothing else."""
    if normalize_label(gold) in ("yes", "no"):
        return True
    items = answer_items(gold)
    return len(items) == 1 and len(parse_numbers(gold)) == 1 and len(normalize(items[0])) == 1


Scorer = Callable[[str, Task], float]
SCORERS: dict[str, Scorer] = {
    "label_accuracy": label_accuracy,
    "numeric_match": numeric_match,
    "qa_f1": qa_span_f1,
    "entity_f1": entity_f1,
    "rouge1": rouge1,
    "rouge2": rouge2,
    "rouge_l": rouge_l,
}
DEFAULT_SCORER: dict[str, str] = {
    "sentiment": "label_accuracy",
    "classification": "label_accuracy",
    "ner": "entity_f1",
    "qa": "numeric_match",
    "stock_movement": "label_accuracy",
    "credit_scoring": "label_accuracy",
    "bankruptcy": "label_accuracy",
    "summarization": "rouge_l",
}


def score(task: Task, answer: str | None) -> float:
    """The task's score for an extracted answer; no answer scores 0."""
    if answer is None:
        return 0.0
    return SCORERS[task.scorer](answer, task)
