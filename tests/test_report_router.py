"""The report's router section: a run written through the real store (test_router's rows),
read back through `slmscope report`, the router judged against numbers worked out by hand;
runs on which no router can be judged give the reason, not a crash."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from slmscope.analysis.router_verdict import ORACLE, ROUTER, Refused, Verdict, router_figures
from slmscope.analysis.tables import load
from slmscope.cli import app
from slmscope.cli.app import console
from slmscope.report.html import read_run, render
from slmscope.report.terminal import router_line
from slmscope.runs.records import Result
from slmscope.runs.store import Store
from test_router import write_run

# single wins five task types, base the other three: the best fixed arm is single (5/8), and
# a router that follows the task type scores every sample, as the oracle does.
SINGLE_WINS = {"sentiment", "classification", "ner", "qa", "summarization"}
TWO_ARMS = (("base", "none"), ("single", "act"))
HOW_JUDGED = (  # as the page escapes it
    "k-nearest-neighbour router over the stored problems, cross-validated by sample within "
    "datasets; the oracle knows each sample&#39;s best arm only afterwards"
)
BASE_TOKENS, AGENT_TOKENS = 110, 3010  # write_run's costs: 100 or 3000 prompt tokens, 10 more


def split_wins(task_type: str, paradigm: str) -> float:
    return 1.0 if (paradigm == "single") == (task_type in SINGLE_WINS) else 0.0


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 400)


def report(run: Path, html: Path) -> tuple[str, str]:
    """`slmscope report RUN --html HTML`: its terminal output and the page."""
    result = CliRunner().invoke(app, ["report", str(run), "--html", str(html)])
    assert result.exit_code == 0, result.output
    return result.output, html.read_text(encoding="utf-8")


def section(page: str) -> str:
    return page.split('<section id="router">')[1].split("</section>")[0]


def frontier_traces(page: str) -> list[dict[str, Any]]:
    """The frontier chart's traces, as the page hands them to plotly.js."""
    start = re.search(r'Plotly\.newPlot\(\s*"chart-frontiers",\s*', page)
    assert start is not None
    traces, _ = json.JSONDecoder().raw_decode(page, start.end())
    return list(traces)


def values(data: Any) -> list[float]:
    """A trace's numbers, which plotly may hand over as a typed array in base64."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return [float(v) for v in data]


def cells(html: str) -> list[list[str]]:
    """The router table's rows, each a list of its cells' text."""
    rows = re.findall(r"<tr class=\"router-\w+\">(.*?)</tr>", html, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_the_router_beats_the_best_fixed_arm_in_the_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, scorer=split_wins, arms=TWO_ARMS)
    output, page = report(run, tmp_path / "report.html")
    # By hand: 48 samples (8 datasets x 6), 30 of the five types single wins.
    single, base = 30 / 48, 18 / 48
    follow = (30 * AGENT_TOKENS + 18 * BASE_TOKENS) / 48  # the oracle's tokens: 1,922.5
    assert single == 0.625 and follow == 1922.5

    html = section(page)
    assert HOW_JUDGED in html
    assert "48 samples answered by every arm (base, single)" in html  # named as the tables do
    rows = cells(html)
    assert [r[0] for r in rows] == [ROUTER, "base", "single best fixed", ORACLE]
    assert [r[1].split(" ")[0] for r in rows] == ["1.00", f"{base:.2f}", f"{single:.2f}", "1.00"]
    assert rows[0][1] == rows[3][1] == "1.00"  # every sample scored 1: an interval of nothing
    assert rows[1][2] == f"{BASE_TOKENS:,}" and rows[2][2] == f"{AGENT_TOKENS:,}"
    assert rows[0][2].startswith(f"{follow:,.0f} [") and rows[3][2].startswith(f"{follow:,.0f} [")
    assert "Share of the oracle gap closed: <b>1.00</b>" in html
    # At single's score, the cheapest router setting keeps the agent where it wins: 1,922.5
    # tokens against 3,010, 36% saved (a larger lambda sends everything to base, 0.375).
    saved = round(100 * (1 - follow / AGENT_TOKENS))
    assert saved == 36
    at_equal = f"at the best fixed arm&#39;s score (single): {follow:,.1f} tokens a sample"
    assert f"{at_equal}, {saved}% saved" in html
    assert page.index('id="frontiers"') < page.index('id="router"') < page.index('id="samples"')
    assert 'href="#router"' in page

    traces = frontier_traces(page)
    marked = {t["name"]: t for t in traces if t["name"] in (ROUTER, ORACLE)}
    assert [t["name"] for t in traces].count(ROUTER) == 1 and len(marked) == 2
    assert marked[ROUTER]["marker"]["symbol"] != marked[ORACLE]["marker"]["symbol"]
    for trace in marked.values():
        assert values(trace["x"]) == [follow] and values(trace["y"]) == [1.0]
        assert trace["xaxis"] == "x"  # the tokens panel, beside the arms
    arms = next(t for t in traces if t["name"] == "m" and t.get("xaxis", "x") == "x")
    points = sorted(zip(arms["text"], values(arms["y"]), strict=True))
    assert points == [("base", base), ("single", single)]

    line = next(x for x in output.splitlines() if x.startswith("router"))
    assert line == (
        f"router (cross-validated by sample): 1.00 vs best fixed single {single:.2f}, "
        "oracle 1.00; gap closed 1.00; best arm per dataset 1.00, its gap closed 1.00"
    )
    table_end = output.index("Paradigms")
    assert output.index(line) > table_end  # after the results table


def test_one_arm_gives_the_reason_and_no_router_points(tmp_path: Path) -> None:
    run = tmp_path / "one"
    write_run(run, scorer=split_wins, arms=(("base", "none"),))
    output, page = report(run, tmp_path / "one.html")
    reason = "a router needs two arms or more; the run has base"
    assert f"No router could be judged: {reason}" in section(page)
    assert "<table" not in section(page)
    names = [t["name"] for t in frontier_traces(page)]
    assert ROUTER not in names and ORACLE not in names
    assert f"router (cross-validated by sample): not judged: {reason}" in output
    assert str(run) not in section(page)  # the report names the run elsewhere


def test_too_few_samples_give_the_reason(tmp_path: Path) -> None:
    write_run(tmp_path / "few", scorer=split_wins, arms=TWO_ARMS, limit=1)
    (found,) = router_figures(tmp_path / "few", load(tmp_path / "few"))
    assert found == Refused(
        "m", "8 samples were answered by every arm (base, single·act); a router needs 10"
    )


def served_run(run_dir: Path, arms: tuple[tuple[str, str], ...]) -> None:
    """Served traffic as `serve --record` stores it: no score, no gold, no task files; each
    request answered by one arm (in turn, as a server's router may send them)."""
    store = Store(run_dir)
    spec = {"served": {"paradigm": arms[0][0]}, "models": ["m"]}
    store.start_run("r1-served", "2026-12-03T00:00:00", spec=spec, versions={}, machine={},
                    models={})  # fmt: skip
    for n in range(24):
        paradigm, harness = arms[n % len(arms)]
        row = Result(
            run_id="r1-served", cell_key=f"r1-served/req{n}", model="m", paradigm=paradigm,
            harness=harness, dataset="served", task_type="qa", sample_id=f"req{n}",
            outcome="ok", score=None, gold="", prompt_tokens=50, completion_tokens=5,
            cached_tokens=0, total_tokens=55, n_calls=1, latency_s=0.2,
            energy_method="unavailable", usage_source="backend",
            created_at="2026-12-03T00:00:00", content=None,
        )  # fmt: skip
        store.write_sample(row, [])
    store.close()


def test_served_traffic_gives_the_reason_not_a_crash(tmp_path: Path) -> None:
    reason = "no sample of m has a score (served traffic has no reference to score against)"
    served_run(tmp_path / "served", TWO_ARMS[:1])
    output, page = report(tmp_path / "served", tmp_path / "served.html")
    assert f"No router could be judged: {reason}" in section(page)
    assert f"router (cross-validated by sample): not judged: {reason}" in output
    names = [t["name"] for t in frontier_traces(page)]
    assert ROUTER not in names and ORACLE not in names
    served_run(tmp_path / "routed", TWO_ARMS)  # two arms, still no score to judge them by
    assert router_figures(tmp_path / "routed", load(tmp_path / "routed")) == [Refused("m", reason)]


def test_the_section_escapes_what_it_shows(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, scorer=split_wins, arms=TWO_ARMS)
    hostile = Refused("<script>alert(1)</script>", "<img src=x onerror=alert(2)>")
    page, _ = render([read_run(run)], routers=[[hostile]])
    html = section(page)
    assert "<script>alert" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x" in html


def test_two_models_get_a_line_and_points_each(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, scorer=split_wins, arms=TWO_ARMS)
    (verdict,) = router_figures(run, load(run))
    assert isinstance(verdict, Verdict)
    other = Refused("n", "a router needs two arms or more; the run has base")
    page, _ = render([read_run(run)], routers=[[verdict, other]])
    html = section(page)
    assert html.count("<h3>") == 2 and "<h3>n</h3>" in html
    assert [t["name"] for t in frontier_traces(page)].count(ROUTER) == 1
    assert router_line(verdict, several=True).startswith("m: router (cross-validated by sample)")
