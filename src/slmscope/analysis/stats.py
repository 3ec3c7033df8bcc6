"""Statistics on per-sample results: seeded bootstrap intervals, label metrics, paired tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

N_BOOT = 2000


def bootstrap_ci(
    values: npt.ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = N_BOOT,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; (nan, nan) for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1 or np.all(data == data[0]):
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def macro_f1(
    predicted: Sequence[str | None], gold: Sequence[str], labels: Sequence[str] | None = None
) -> float:
    """Mean F1 over the gold labels (a missing prediction is wrong for every class)."""
    classes = list(labels) if labels is not None else sorted(set(gold))
    scores = []
    for label in classes:
        tp = sum(p == label and g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold, strict=True))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else math.nan


def mcc(predicted: Sequence[str | None], gold: Sequence[str], positive: str) -> float:
    """Matthews correlation for a binary task; a missing prediction counts as negative."""
    tp = fp = tn = fn = 0
    for p, g in zip(predicted, gold, strict=True):
        if p == positive:
            tp, fp = (tp + 1, fp) if g == positive else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if g == positive else (fn, tn + 1)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else (tp * tn - fp * fn) / denominator


def paired_bootstrap(
    a: npt.ArrayLike, b: npt.ArrayLike, *, seed: int = 0, n_boot: int = N_BOOT
) -> tuple[float, float, float, float]:
    """Mean of b - a over paired samples, its 95% interval and a two-sided p-value."""
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diffs.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    low, high = bootstrap_ci(diffs, seed=seed, n_boot=n_boot)
    if np.all(diffs == 0):
        return 0.0, 0.0, 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_boot, diffs.size))].mean(axis=1)
    p = 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0)))
    return float(diffs.mean()), low, high, min(1.0, p)


def bootstrap_diff(
    a: npt.ArrayLike, b: npt.ArrayLike, *, seed: int = 0, n_boot: int = N_BOOT, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of b minus mean of a over two independent groups (different samples), with a
    percentile bootstrap interval that resamples each group on its own; nan for an empty one."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan, math.nan
    diff = float(y.mean() - x.mean())
    rng = np.random.default_rng(seed)
    means_x = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    means_y = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means_y - means_x, [tail, 100 - tail])
    return diff, float(low), float(high)


def mcnemar_exact(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[int, int, float]:
    """Exact McNemar test on paired 0/1 scores: (a right only, b right only, two-sided p)."""
    x, y = np.asarray(a, dtype=float) >= 0.5, np.asarray(b, dtype=float) >= 0.5
    only_a, only_b = int(np.sum(x & ~y)), int(np.sum(y & ~x))
    n = only_a + only_b
    if n == 0:
        return 0, 0, 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return only_a, only_b, min(1.0, 2 * tail)
