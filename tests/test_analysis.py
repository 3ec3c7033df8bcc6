"""Statistics checked against hand-computed values and a synthetic case with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from slmscope.analysis import compare, composite_z, nrq, nrq_by_paradigm, summarize
from slmscope.analysis.stats import bootstrap_ci, macro_f1, mcc, mcnemar_exact, paired_bootstrap


def test_bootstrap_ci_covers_the_true_mean_about_95_percent() -> None:
    """Bernoulli(0.7), n = 50: the percentile interval should hold 0.7 in ~95% of draws."""
    rng = np.random.default_rng(123)
    hits = 0
    trials = 300
    for t in range(trials):
        sample = (rng.random(50) < 0.7).astype(float)
        low, high = bootstrap_ci(sample, seed=t, n_boot=1000)
        hits += low <= 0.7 <= high
    assert 0.89 <= hits / trials <= 0.99


def test_bootstrap_ci_is_seeded_and_degenerate_cases() -> None:
    data = [0.0, 1.0, 1.0, 0.0, 1.0]
    assert bootstrap_ci(data, seed=7) == bootstrap_ci(data, seed=7)
    assert bootstrap_ci([1.0, 1.0]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_macro_f1_and_mcc_by_hand() -> None:
    gold = ["pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "neg", "neg", "neg", None]
    # pos: tp1 fp0 fn1 -> 2/3; neg: tp2 fp1 fn0 -> 4/5; neu: tp0 -> 0
    assert macro_f1(pred, gold) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    # binary: tp=2 (Rise), fn=1, fp=1, tn=1 -> (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    g = ["Rise", "Rise", "Rise", "Fall", "Fall"]
    p = ["Rise", "Rise", "Fall", "Rise", "Fall"]
    assert mcc(p, g, "Rise") == pytest.approx(1 / 6)
    assert mcc(p, g, "Fall") == pytest.approx(1 / 6)  # symmetric in the class named positive
    assert mcc(["Rise"] * 5, g, "Rise") == 0.0


def test_mcnemar_exact_by_hand() -> None:
    a = [1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (1, 6)
    assert p == pytest.approx(2 * (1 + 7) / 2**7)  # two-sided binomial, n = 7, k <= 1


def test_paired_bootstrap_sees_a_consistent_gain() -> None:
    a = [0.0] * 20 + [1.0] * 20
    b = [1.0] * 15 + [0.0] * 5 + [1.0] * 20
    diff, low, high, p = paired_bootstrap(a, b, seed=1)
    assert diff == pytest.approx(15 / 40 - 0) or diff == pytest.approx((35 - 20) / 40)
    assert 0 < low < diff < high and p < 0.01
    assert paired_bootstrap(a, a)[3] == 1.0


def results_frame() -> pd.DataFrame:
    rows = []
    scores = {
        ("m", "base", "d1"): [1, 0, 0, 0],
        ("m", "single", "d1"): [1, 1, 0, 0],
        ("m", "base", "d2"): [0, 0, 0, 0],
        ("m", "single", "d2"): [1, 0, 0, 0],
        ("m", "base", "d3"): [1, 1, 1, 1],
        ("m", "single", "d3"): [1, 1, 0, 0],
    }
    for (model, paradigm, dataset), values in scores.items():
        for i, v in enumerate(values):
            rows.append(
                {
                    "model": model,
                    "paradigm": paradigm,
                    "dataset": dataset,
                    "task_type": "sentiment",
                    "sample_id": f"s{i}",
                    "score": float(v),
                    "outcome": "ok" if v or i < 3 else "no_final_answer",
                    "final_answer": "positive" if v else "negative",
                    "gold": "positive",
                    "total_tokens": 100 + 10 * i,
                    "latency_s": 1.0 + i,
                }
            )
    return pd.DataFrame(rows)


def test_summarize_columns_and_values() -> None:
    s = summarize(results_frame()).set_index(["paradigm", "dataset"])
    row = s.loc[("single", "d1")]
    assert row["n"] == 4 and row["score"] == 0.5
    assert row["score_lo"] <= 0.5 <= row["score_hi"]
    assert row["tokens_mean"] == 115 and row["tokens_p50"] == 115
    assert row["latency_p95"] == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    # outcome ok unless the sample scored 0 and is the fourth: here s3 -> 3 of 4 ok
    assert row["completion_rate"] == 0.75
    assert s.loc[("base", "d3")]["completion_rate"] == 1.0


def test_nrq_by_hand_with_the_near_zero_guard() -> None:
    table = nrq(summarize(results_frame())).set_index("dataset")
    assert table.loc["d1", "nrq"] == pytest.approx((0.5 - 0.25) / 0.25)  # +100%
    assert table.loc["d3", "nrq"] == pytest.approx((0.5 - 1.0) / 1.0)  # -50%
    assert bool(table.loc["d2", "base_near_zero"]) and math.isnan(table.loc["d2", "nrq"])
    by = nrq_by_paradigm(summarize(results_frame())).set_index("paradigm")
    assert by.loc["single", "nrq"] == pytest.approx((1.0 - 0.5) / 2)
    assert (by.loc["single", "pairs"], by.loc["single", "flagged"]) == (2, 1)
    assert by.loc["base", "nrq"] == 0.0


def test_composite_z_by_hand() -> None:
    z = composite_z(summarize(results_frame())).set_index("paradigm")["z"]
    # d1: base .25 single .5; d2: 0 vs .25; d3: 1 vs .5 -> z = -/+0.7071 (sample std)
    k = 1 / math.sqrt(2)
    assert z["single"] == pytest.approx((k + k - k) / 3)
    assert z["base"] == pytest.approx(-z["single"])


def test_compare_pairs_samples_by_id() -> None:
    table = compare(results_frame(), "base", "single").set_index("dataset")
    assert table.loc["d1", "pairs"] == 4
    assert table.loc["d1", "diff"] == pytest.approx(0.25)
    assert (table.loc["d3", "only_a_right"], table.loc["d3", "only_b_right"]) == (2, 0)
    assert table.loc["d3", "p_mcnemar"] == pytest.approx(0.5)
