"""The report: the paradigm table, frontier and recommendation against hand-made numbers; the
HTML page from a real SmolLM2 run, opened in headless Chromium; two-run comparison; exports."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import SMOL
from slmscope.analysis.overview import (
    agent_costs,
    paradigm_table,
    pareto_front,
    recommend,
)
from slmscope.analysis.tables import load, load_runs, load_steps
from slmscope.cli import app
from slmscope.report.terminal import paradigm_summary

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"


def rows(paradigm: str, scores: list[float], tokens: int, energy: float | None = 1.0) -> list:
    return [
        {
            "model": "m",
            "paradigm": paradigm,
            "dataset": "d",
            "task_type": "sentiment",
            "sample_id": f"s{i}",
            "score": s,
            "outcome": "ok" if s else "no_final_answer",
            "total_tokens": tokens,
            "prompt_tokens": tokens - 10,
            "cached_tokens": (tokens - 10) // 2 if paradigm != "base" else 0,
            "latency_s": tokens / 100,
            "energy_j": energy,
            "energy_method": "estimate" if energy is not None else "unavailable",
            "peak_rss_mb": 500.0,
            "gold": "positive",
            "final_answer": "positive" if s else None,
        }
        for i, s in enumerate(scores)
    ]


def test_paradigm_table_by_hand() -> None:
    frame = pd.DataFrame(
        rows("base", [1, 0, 1, 0], 100, energy=2.0) + rows("single", [1, 1, 1, 0], 400, None)
    )
    table = paradigm_table(frame).set_index("paradigm")
    base, single = table.loc["base"], table.loc["single"]
    assert base["score"] == 0.5 and single["score"] == 0.75
    assert single["nrq"] == pytest.approx(0.5)  # (0.75 - 0.5) / 0.5
    assert base["completion_rate"] == 0.5 and single["completion_rate"] == 0.75
    assert base["tokens_per_s"] == pytest.approx(100.0)  # 400 tokens over 4 s
    assert base["energy_per_sample_j"] == 2.0 and base["energy_per_token_j"] == 0.02
    assert math.isnan(single["energy_per_sample_j"])  # unmeasured stays unmeasured
    assert base["energy_method"] == "estimate" and single["energy_method"] == "unavailable"
    assert base["score_lo"] <= 0.5 <= base["score_hi"]
    assert base["prompt_evaluated"] == 1.0 and single["prompt_evaluated"] == pytest.approx(0.5)
    caption = str(paradigm_summary(table.reset_index()).caption)
    assert caption.endswith("prompt tokens evaluated (not reused): base 100%, single 50%")


def test_pareto_front_by_hand() -> None:
    points = pd.DataFrame({"cost": [1, 2, 3, 2, float("nan")], "score": [0.2, 0.5, 0.4, 0.5, 0.9]})
    # (3, 0.4) is beaten by (2, 0.5); the two (2, 0.5) tie and both stay; no cost, no front.
    assert pareto_front(points, "cost").tolist() == [True, True, False, True, False]


def test_recommendation_takes_the_cheapest_of_the_tied() -> None:
    tied = pd.DataFrame(rows("base", [1, 0] * 10, 100) + rows("single", [1, 1, 0, 1] * 5, 900))
    (rec,) = recommend(tied)
    assert rec.paradigm == "base" and rec.confidence == "tied"
    assert "single" in rec.text and "9.0x the tokens" in rec.text
    clear = pd.DataFrame(rows("base", [0] * 20, 100) + rows("single", [1] * 18 + [0] * 2, 900))
    (rec,) = recommend(clear)
    assert rec.paradigm == "single" and rec.confidence == "clear"
    few = pd.DataFrame(rows("base", [0, 0], 100) + rows("single", [1, 1], 900))
    assert recommend(few)[0].confidence == "too few samples"


def test_agent_costs_split_the_multi_agent() -> None:
    steps = pd.DataFrame(
        [
            {
                "model": "m",
                "paradigm": "multi",
                "agent": a,
                "turn": 1,
                "prompt_tokens": p,
                "completion_tokens": 10,
                "latency_s": 1.0,
                "energy_j": 0.5,
            }
            for a, p in [("supervisor", 90), ("quant_agent", 290), ("supervisor", 190)]
        ]
    )
    costs = agent_costs(steps).set_index("agent")
    assert costs.loc["supervisor", "tokens"] == 300 and costs.loc["supervisor", "calls"] == 2
    assert costs.loc["quant_agent", "token_share"] == pytest.approx(0.5)
    assert costs.loc["supervisor", "energy_j"] == 1.0


# --- a real run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, smol_path: Path) -> Path:
    """SmolLM2-135M, base and single and multi, two built-in datasets, one sample each."""
    out = tmp_path_factory.mktemp("report") / "run"
    result = CliRunner().invoke(
        app,
        [
            "run", "-m", SMOL, "-p", "base", "-p", "single", "-p", "multi",
            "--tasks", "builtin:sentiment", "--tasks", "builtin:table_qa",
            "--limit", "1", "--max-tokens", "64", "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and (out / "report.html").is_file()
    return out


def test_run_records_energy_per_call_and_sample(real_run: Path) -> None:
    results, steps = load(real_run), load_steps(real_run)
    assert set(results["energy_method"]) == {"estimate"}  # no RAPL or GPU on CI machines
    assert (results["energy_j"] > 0).all() and (steps["energy_j"].dropna() > 0).all()
    summed = steps.groupby("cell_key")["energy_j"].sum()
    for row in results.itertuples():
        assert row.energy_j == pytest.approx(summed[row.cell_key])
    model = json.loads(load_runs(real_run)[-1]["models"])[SMOL]
    assert model["energy"] == {"method": "estimate", "core_w": 7.0, "idle_w": 10.0}
    assert model["kv_cache_mb"] > 0 and model["file_mb"] > 50 and model["peak_rss_mb"] > 100
    assert len(model["sha256"]) == 64
    kv = model["kv_states"]  # the setting, and what the saved states did (after the run)
    assert kv["budget_mb"] == 512 and kv["peak_mb"] <= 512
    assert kv["saved"] > 0 and kv["restored_tokens"] % kv["chunk_tokens"] == 0
    evaluated = paradigm_table(results).set_index("paradigm")["prompt_evaluated"]
    assert evaluated.between(0, 1).all()
    # An agent's later turns resume its conversation; base's short prompt is one partial chunk.
    assert evaluated["single"] < 0.75 and evaluated["multi"] < 0.75
    # Turns the 64-token budget cut, per step and per sample, agree.
    cut = steps[steps["cut"].isin(["action", "reply"])].groupby("cell_key").size()
    for row in results.itertuples():
        assert row.cut_turns == cut.get(row.cell_key, 0) and row.cut_actions <= row.cut_turns
    assert set(steps["cut"].dropna()) <= {"action", "reply", "input", "thought"}


def test_page_is_self_contained_and_linked(real_run: Path) -> None:
    page = (real_run / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http", page)  # nothing fetched
    ids = set(re.findall(r'id="([^"]+)"', page))
    links = set(re.findall(r'href="#([^"]+)"', page))
    assert links and links <= ids  # every cell link lands somewhere
    for section in ("recommendation", "table2", "frontiers", "heatmaps", "outcomes", "samples"):
        assert f'id="{section}"' in page
    assert page.count('class="trace"') == 6  # 2 datasets x 1 sample x 3 paradigms
    assert "estimate" in page and "energy J / sample" in page


def test_report_command_compares_two_runs(real_run: Path, tmp_path: Path) -> None:
    second = tmp_path / "again"
    shutil.copytree(real_run, second)
    html = tmp_path / "cmp.html"
    result = CliRunner().invoke(app, ["report", str(real_run), str(second), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "Paradigms" in result.output  # the terminal summary
    page = html.read_text()
    assert 'id="comparison"' in page and "run → again" in page
    section = page.split('id="comparison"')[1].split("</section>")[0]
    assert section.count("<tr>") == 1 + 6  # header, then 3 paradigms x 2 datasets
    assert section.count("+0.00 [+0.00, +0.00]") == 6  # same samples, same scores: no change
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "holds no results.sqlite" in missing.output


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_round_trips(real_run: Path, tmp_path: Path, fmt: str) -> None:
    result = CliRunner().invoke(
        app, ["export", str(real_run), "--format", fmt, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    read = {
        "parquet": pd.read_parquet,
        "csv": pd.read_csv,
        "jsonl": lambda p: pd.read_json(p, lines=True),
    }[fmt]
    for name, original in (("results", load(real_run)), ("steps", load_steps(real_run))):
        back = read(tmp_path / f"{name}.{fmt}")
        assert list(back.columns) == list(original.columns) and len(back) == len(original)
        assert back["cell_key"].tolist() == original["cell_key"].tolist()
    bad = CliRunner().invoke(app, ["export", str(real_run), "--format", "xlsx"])
    assert bad.exit_code == 2 and "unknown format 'xlsx'" in bad.output


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Debian's chromium and chromium-driver are not installed (CI installs them)",
)
def test_report_in_headless_chromium(real_run: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,2200",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get((real_run / "report.html").resolve().as_uri())
        points = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map("
            "g => [g.id, g.calcdata.reduce((n, trace) => n + trace.length, 0)])"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
        # A heat-map cell's link opens its samples.
        first = driver.execute_script(
            "var g = document.getElementById('chart-heatmap-0');"
            "return g.data[0].customdata[0][0][0];"
        )
        driver.execute_script(f"location.hash = {first!r};")
        opened = driver.execute_script(f"return document.getElementById({first[1:]!r}).open;")
    finally:
        driver.quit()
    assert errors == []
    charts = dict(points)
    assert {"chart-frontiers", "chart-heatmap-0", "chart-outcomes"} <= set(charts)
    delegated = load_steps(real_run).query("paradigm == 'multi'")["agent"].nunique() > 1
    assert ("chart-agents" in charts) == delegated  # the split shows when there is one
    assert all(n > 0 for n in charts.values()), charts
    assert opened is True
    assert os.path.getsize(ARTIFACTS / "report.png") > 10_000


def test_empty_results_give_an_empty_table() -> None:
    assert paradigm_table(pd.DataFrame()).empty
