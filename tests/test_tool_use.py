"""Tool use and label priors: hand-made results frames checked against hand-computed numbers,
and a stored run whose agent never acted, read back through the terminal and the report."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from slmscope import analysis
from slmscope.analysis.stats import bootstrap_diff
from slmscope.cli import app
from slmscope.cli.app import console
from slmscope.report.terminal_tools import tool_use_notes, tool_use_summary
from slmscope.runs import Result
from slmscope.runs.store import Store

IDLE = (
    "it behaved as the base model with a longer prompt, and its verdict is not about the paradigm."
)


def rows(
    paradigm: str,
    harness: str,
    scores: list[float],
    *,
    dataset: str = "d",
    tools: int = 3,
    **per_sample: list[Any],
) -> list[dict[str, Any]]:
    """One row per score, as `analysis.load` gives them; tool columns per sample (0 default)."""
    out = []
    for i, score in enumerate(scores):
        row: dict[str, Any] = {
            "cell_key": f"{paradigm}|{harness}|{dataset}|{i}",
            "model": "m",
            "paradigm": paradigm,
            "harness": harness,
            "dataset": dataset,
            "task_type": "credit_scoring",
            "sample_id": f"s{i}",
            "outcome": "ok",
            "error": None,
            "score": score,
            "gold": "good",
            "final_answer": "good",
            "total_tokens": 100,
            "latency_s": 1.0,
            "tools_offered": tools,
            "tool_calls": 0,
            "tool_errors": 0,
            "handoffs": 0,
            "tools_used": None,
            "acted": False,
            "observed": False,
            "copies": 0,
        }
        for name, values in per_sample.items():
            row[name] = values[i]
        out.append(row)
    return out


def tool_frame() -> pd.DataFrame:
    t, f = True, False
    act = rows(
        "single", "act", [1, 1, 0, 0, 0],
        acted=[t, t, t, f, f], tool_calls=[2, 1, 0, 0, 0], handoffs=[0, 0, 1, 0, 0],
        tool_errors=[1, 0, 0, 0, 0], observed=[t, f, t, f, f], copies=[0, 0, 0, 1, 1],
        cut_turns=[2, 0, 1, 0, 0], cut_actions=[2, 0, 0, 0, 0], repeated_cuts=[1, 0, 0, 0, 0],
        closed_turns=[0, 1, 0, 0, 1],
    )  # fmt: skip
    idle = rows(
        "single", "constrained", [1.0] + [0.5] * 9,
        acted=[t] + [f] * 9, tool_calls=[1] + [0] * 9,
    )  # fmt: skip
    at_threshold = rows(
        "multi", "act", [0.0] * 10, acted=[t, t] + [f] * 8, handoffs=[1, 2] + [0] * 8
    )
    base = rows("base", "none", [1, 0, 1, 0, 1], tools=0)
    return pd.DataFrame(base + act + idle + at_threshold)


def test_tool_use_by_hand() -> None:
    table = analysis.tool_use(tool_frame()).set_index("paradigm")
    assert list(table.index) == ["single·act", "single·constrained", "multi·act"]  # no base
    act = table.loc["single·act"]
    assert (act["paradigm_name"], act["harness"], act["n"], act["n_acted"]) == (
        "single",
        "act",
        5,
        3,
    )
    assert act["acted"] == pytest.approx(0.6) and act["acted_lo"] < 0.6 < act["acted_hi"]
    assert act["calls_per_sample"] == pytest.approx(4 / 5)  # 3 tool calls and 1 hand-off
    assert act["handoffs_per_sample"] == pytest.approx(1 / 5)
    assert act["tool_error_rate"] == pytest.approx(1 / 3)
    assert act["observed"] == pytest.approx(0.4) and act["copies_per_sample"] == pytest.approx(0.4)
    assert act["score"] == pytest.approx(0.4)
    cuts = ["cut_turns", "cut_actions", "repeated_cuts", "closed_turns"]
    assert list(act[cuts]) == [3, 2, 1, 2]
    assert act["score_acted"] == pytest.approx(2 / 3) and act["score_not_acted"] == 0.0
    assert (act["n_acted"], act["n_not_acted"]) == (3, 2)
    assert act["acted_diff"] == pytest.approx(2 / 3)
    assert act["acted_diff_lo"] <= 2 / 3 <= act["acted_diff_hi"] and act["acted_diff_lo"] >= 0
    idle = table.loc["single·constrained"]
    assert idle["acted"] == pytest.approx(0.1) and idle["tool_error_rate"] == 0.0
    assert idle["acted_diff"] == pytest.approx(0.5)  # one sample acted: no interval
    assert math.isnan(idle["acted_diff_lo"]) and math.isnan(idle["acted_diff_hi"])
    multi = table.loc["multi·act"]
    assert multi["acted"] == pytest.approx(0.2) and multi["calls_per_sample"] == pytest.approx(0.3)
    assert math.isnan(multi["tool_error_rate"])  # hand-offs only: no tool call to fail
    assert list(multi[cuts]) == [0, 0, 0, 0]
    older = analysis.tool_use(tool_frame().drop(columns=cuts)).set_index("paradigm")
    assert list(older.loc["single·act", cuts]) == [0, 0, 0, 0]  # rows stored before the count


def test_unpaired_bootstrap_difference() -> None:
    assert bootstrap_diff([0.0, 0.0], [1.0, 1.0]) == (1.0, 1.0, 1.0)
    diff, low, high = bootstrap_diff([0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0], seed=3)
    assert diff == pytest.approx(0.75 - 1 / 3) and low < diff < high
    assert bootstrap_diff([0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0], seed=3) == (diff, low, high)
    assert all(math.isnan(x) for x in bootstrap_diff([], [1.0]))


def test_idle_arms_warn_below_a_fifth_only() -> None:
    table = analysis.tool_use(tool_frame())
    (idle,) = analysis.idle_arms(table)  # multi·act acted on exactly a fifth: no warning
    assert idle["paradigm"] == "single·constrained" and idle["n_acted"] == 1
    assert idle["text"] == f"single·constrained acted on 1 of 10 samples: {IDLE}"
    assert [i["paradigm"] for i in analysis.idle_arms(table, threshold=0.21)] == [
        "single·constrained",
        "multi·act",
    ]


def test_no_tools_no_table_and_harness_effect_counts_acts() -> None:
    old = tool_frame().assign(tools_offered=0)  # rows stored before tool use was counted
    assert analysis.tool_use(old).empty
    assert analysis.tool_use(tool_frame().drop(columns=["acted"])).empty
    effect = analysis.harness_effect(tool_frame()).set_index(["paradigm", "harness"])
    assert effect.loc[("single", "act"), "acted"] == pytest.approx(0.6)
    assert effect.loc[("multi", "act"), "acted"] == pytest.approx(0.2)
    assert math.isnan(effect.loc[("base", "none"), "acted"])


def prior_frame() -> pd.DataFrame:
    golds = ["good", "good", "Bad", "good ", "GOOD"]  # 4 good, 1 bad once normalised
    credit = {
        "base": [" bad", "BAD", "bad", "Bad", "bad"],
        "single": ["good"] * 5,
        "multi": ["good", "bad", None, "good", "good"],
    }
    out = []
    for paradigm, answers in credit.items():
        harness = "none" if paradigm == "base" else "act"
        for row, answer, gold in zip(
            rows(paradigm, harness, [0.0] * 5, dataset="credit"), answers, golds, strict=True
        ):
            hit = answer is not None and answer.strip().lower() == gold.strip().lower()
            out.append({**row, "final_answer": answer, "gold": gold, "score": float(hit)})
    # Nine of ten one answer: a constant; two samples: too few to say; no answers: not one.
    nine = rows("single", "act", [0.0] * 10, dataset="qa")
    for i, row in enumerate(nine):
        row.update(gold=f"g{i % 12}", final_answer="0" if i else "1")
    out += nine
    for i, row in enumerate(rows("base", "none", [0.0] * 10, dataset="qa")):
        out.append({**row, "gold": f"g{i}", "final_answer": None})
    for i, row in enumerate(rows("multi", "act", [0.0] * 12, dataset="qa")):
        out.append({**row, "gold": f"g{i}", "final_answer": "x"})
    out += rows("single", "act", [1.0, 1.0], dataset="two")
    return pd.DataFrame(out)


def test_priors_by_hand() -> None:
    found = analysis.priors(prior_frame()).set_index(["paradigm", "dataset"])
    base, single, multi = (found.loc[(p, "credit")] for p in ("base", "single", "multi"))
    assert (base["top_answer"], base["top_count"], base["top_share"]) == ("bad", 5, 1.0)
    assert base["score"] == pytest.approx(0.2) and single["score"] == pytest.approx(0.8)
    assert base["majority_gold"] == "good" and base["majority_score"] == pytest.approx(0.8)
    assert (base["classes"], base["chance_score"]) == (2, 0.5)
    assert base["constant"] and single["constant"] and not multi["constant"]
    assert base["note"] == "answered `bad` to 5 of 5: a constant"
    assert single["note"] == "answered `good` to 5 of 5: a constant"
    assert (multi["top_answer"], multi["top_count"], multi["note"]) == ("good", 3, "")
    qa = found.loc[("single", "qa")]
    assert qa["constant"] and qa["top_share"] == pytest.approx(0.9)
    assert qa["note"] == "answered `0` to 9 of 10: a constant"
    assert qa["classes"] == 12 and math.isnan(qa["chance_score"])  # not a label task
    assert qa["majority_gold"] == "g0" and qa["majority_score"] == pytest.approx(0.1)
    none = found.loc[("base", "qa")]
    assert none["top_answer"] == "(none)" and none["top_share"] == 1.0 and not none["constant"]
    assert found.loc[("multi", "qa"), "majority_score"] == pytest.approx(1 / 12)
    assert not found.loc[("single", "two"), "constant"]  # 2 of 2: too few samples


def test_prior_pairs_name_differences_between_constants() -> None:
    pairs = analysis.prior_pairs(analysis.priors(prior_frame()))
    (pair,) = [p for p in pairs if p["dataset"] == "credit"]
    assert pair["arms"] == ("base", "single") and pair["answers"] == ("bad", "good")
    assert pair["text"] == (
        "base answered `bad` to 5 of 5 and single `good` to 5 of 5: the difference between "
        "base and single on credit (0.20 against 0.80) is a label prior, not a paradigm effect."
    )
    (qa,) = [p for p in pairs if p["dataset"] == "qa"]  # base gave no answer: not a constant
    assert qa["arms"] == ("single", "multi") and qa["answers"] == ("0", "x")
    assert len(pairs) == 2


# --- a stored run whose agent never acted -------------------------------------------------------

HOSTILE = "<script>alert(1)</script> [red]x[/red]"


def _result(paradigm: str, harness: str, i: int, answer: str, **tool: Any) -> Result:
    return Result(
        run_id="r1", cell_key=f"{paradigm}|{harness}|{i}", model="m", paradigm=paradigm,
        harness=harness, dataset="builtin:credit", task_type="credit_scoring",
        sample_id=f"s{i}", outcome="ok", score=float(answer == "good"), gold="good",
        prompt_tokens=10, completion_tokens=5, cached_tokens=0, total_tokens=15, n_calls=1,
        latency_s=0.5, energy_method="estimate", usage_source="backend",
        created_at="2026-01-01T00:00:00", final_answer=answer, **tool,
    )  # fmt: skip


@pytest.fixture
def idle_run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    store = Store(folder)
    store.start_run("r1", "2026-01-01T00:00:00", spec={}, versions={}, machine={}, models={})
    for i in range(6):
        store.write_sample(_result("base", "none", i, "good"), [])
        store.write_sample(_result("single", "act", i, HOSTILE, tools_offered=3), [])
    store.close()
    return folder


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 400)


def test_report_warns_when_an_agent_never_acted(idle_run: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(idle_run)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Tool use" in out and f"single·act acted on 0 of 6 samples: {IDLE}" in out
    assert f"answered `{HOSTILE}` to 6 of 6: a constant" in out  # markup printed, not obeyed
    # One harness: the arm is `single` in the tables; base and it both answered one label.
    assert "between base and single on builtin:credit (1.00 against 0.00) is a label prior" in out
    page = (idle_run / "report.html").read_text()
    assert 'id="tool-use"' in page and 'class="warn"' in page
    links, ids = re.findall(r'href="#([^"]+)"', page), re.findall(r'id="([^"]+)"', page)
    assert "tool-use" in links and set(links) <= set(ids)
    assert f"single·act acted on 0 of 6 samples: {IDLE}" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "answered `&lt;script&gt;alert(1)&lt;/script&gt; [red]x[/red]` to 6 of 6" in page
    assert "label prior, not a paradigm effect" in page  # base `good` and single `<script>`


def test_terminal_tool_table_escapes_model_output() -> None:
    frame = pd.DataFrame(rows("[red]arm[/]", "act", [1.0, 0.0, 1.0], final_answer=["[blink]x"] * 3))
    table = analysis.tool_use(frame)
    found = analysis.priors(frame)
    with console.capture() as captured:
        console.print(tool_use_summary(table))
        for line in tool_use_notes(analysis.idle_arms(table), found, []):
            console.print(line, highlight=False, soft_wrap=True)
    out = captured.get()
    assert "[red]arm[/]" in out and "answered `[blink]x` to 3 of 3: a constant" in out
    assert "warning: [red]arm[/]·act acted on 0 of 3 samples" in out
    flat = " ".join(out.split())  # the caption wraps
    assert "turns the token budget cut (inside an action): [red]arm[/] 0 (0)" in flat
