"""The HTML report: one self-contained file (plotly.js, styles and data inlined; opens offline).

It shows the reference study's Table 2 for the run with intervals, a recommendation per task
type, the agents' tool use (with a warning for each arm that did not act, and the arms that
answered one label), quality-versus-cost frontiers, a paradigm router judged out of fold against
the fixed arms and the oracle (also on the frontier), score heat maps, outcomes, the multi agent's
cost split, per-dataset results beside their label priors, and every sample with its trace,
each table cell linking to its samples.
Two run directories give a side-by-side comparison.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jinja2
import pandas as pd
import plotly.io as pio
import plotly.offline

from slmscope.analysis.harness import harness_effect, harness_flips
from slmscope.analysis.overview import (
    agent_costs,
    compare_runs,
    outcome_shares,
    paradigm_table,
    recommend,
)
from slmscope.analysis.router_verdict import JUDGED, Figures, router_figures
from slmscope.analysis.tables import load, load_runs, load_steps, summarize
from slmscope.analysis.tool_use import idle_arms, prior_pairs, prior_texts, priors, tool_use
from slmscope.errors import ConfigError
from slmscope.report.charts import agent_split, frontiers, heatmap, outcome_bars
from slmscope.report.router_section import router_section
from slmscope.report.terminal import clip, with_ci
from slmscope.runs.store_pg import is_database_url, redacted
from slmscope.runs.stores import Source, label_of

TEMPLATES = Path(__file__).parent / "templates"
TRACE_CHARS = 1200  # per step output/observation shown in the page (the database has it all)


@dataclass(frozen=True)
class RunData:
    label: str
    path: Source  # the run directory, or the database URL
    results: pd.DataFrame
    steps: pd.DataFrame
    runs: list[dict[str, Any]]


@dataclass(frozen=True)
class ReportInfo:
    path: Path
    samples: int
    seconds: float
    bytes: int


def read_run(path: Source, label: str | None = None) -> RunData:
    results = load(path)
    if results.empty:
        raise ConfigError(f"{redacted(str(path))}: the run holds no results yet")
    return RunData(label or label_of(path), path, results, load_steps(path), load_runs(path))


def anchor(*parts: object) -> str:
    return "a" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _labelled(runs: list[RunData]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All runs' results and steps; with several runs, models are named `run: model`."""
    results, steps = [], []
    for run in runs:
        r, s = run.results.copy(), run.steps.copy()
        if len(runs) > 1:
            r["model"] = run.label + ": " + r["model"]
            if not s.empty:
                s["model"] = run.label + ": " + s["model"]
        results.append(r)
        steps.append(s)
    return pd.concat(results, ignore_index=True), pd.concat(steps, ignore_index=True)


def _samples(results: pd.DataFrame, steps: pd.DataFrame) -> list[dict[str, Any]]:
    """Sample groups (model x paradigm x dataset), each sample with its trace."""
    by_cell = {k: g for k, g in steps.groupby("cell_key", sort=False)} if len(steps) else {}
    groups = []
    for (model, paradigm, dataset), g in results.groupby(["model", "paradigm", "dataset"]):
        samples = []
        for row in g.to_dict("records"):
            trace = by_cell.get(row["cell_key"])
            samples.append(
                {
                    "id": anchor(model, row["cell_key"]),
                    "sample_id": row["sample_id"],
                    "score": _num(row["score"]),
                    "outcome": row["outcome"],
                    "agent_outcome": row.get("agent_outcome"),
                    "answer": clip(row["final_answer"], 200),
                    "gold": clip(row["gold"], 200),
                    "tokens": int(row["total_tokens"]),
                    "latency": _num(row["latency_s"]),
                    "energy": _num(row["energy_j"]),
                    "error": clip(row.get("error"), 300),
                    "steps": []
                    if trace is None
                    else [
                        {
                            "agent": s["agent"],
                            "turn": s["turn"],
                            "tokens": int((s["prompt_tokens"] or 0) + (s["completion_tokens"] or 0))
                            if _num(s["prompt_tokens"]) is not None
                            else None,
                            "latency": _num(s["latency_s"]),
                            "energy": _num(s.get("energy_j")),
                            "output": clip(s["output"], TRACE_CHARS),
                            "tool": s["tool"] if isinstance(s["tool"], str) else None,
                            "tool_input": clip(s["tool_input"], 400),
                            "observation": clip(s["observation"], 600),
                            "error": clip(s["error"], 300),
                        }
                        for s in trace.to_dict("records")
                    ],
                }
            )
        groups.append(
            {
                "id": anchor(model, paradigm, dataset),
                "paradigm_id": anchor(model, paradigm, ""),
                "model": model,
                "paradigm": paradigm,
                "dataset": dataset,
                "task_type": g["task_type"].iloc[0],
                "score": float(g["score"].mean()),
                "samples": samples,
            }
        )
    return groups


def _div(fig: Any, div_id: str, post_script: str | None = None) -> str:
    html: str = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        post_script=post_script,
        config={"displaylogo": False, "responsive": True},
    )
    return html


def routers_of(runs: Sequence[RunData], *, seed: int = 0) -> list[list[Figures]]:
    """Per run, per model: the router judged on its stored results, or why it cannot be."""
    return [router_figures(r.path, r.results, seed=seed) for r in runs]


def render(
    runs: list[RunData], *, seed: int = 0, routers: Sequence[Sequence[Figures]] | None = None
) -> tuple[str, int]:
    """The page for one run (or a comparison of several), and how many samples it shows.
    `routers`: per run, the router figures already judged (routers_of); judged here if None."""
    results, steps = _labelled(runs)
    router_sections, router_points = router_section(
        [f"{r.label}: " if len(runs) > 1 else "" for r in runs],
        routers if routers is not None else routers_of(runs, seed=seed),
    )
    table = paradigm_table(results, seed=seed)
    per_dataset = summarize(results, seed=seed)
    per_dataset["id"] = [
        anchor(m, p, d)
        for m, p, d in zip(
            per_dataset["model"], per_dataset["paradigm"], per_dataset["dataset"], strict=True
        )
    ]
    found = priors(results)
    per_dataset = per_dataset.merge(
        found[["model", "paradigm", "dataset", "top_answer", "top_share", "majority_score",
               "chance_score", "constant"]],
        on=["model", "paradigm", "dataset"],
        how="left",
    )  # fmt: skip
    per_dataset["top_answer"] = per_dataset["top_answer"].map(lambda a: clip(a, 40))
    tools = tool_use(results, seed=seed)
    per_type = (
        results.groupby(["model", "paradigm", "task_type"], sort=False)
        .agg(score=("score", "mean"), n=("score", "size"))
        .reset_index()
    )
    first_dataset: dict[tuple[str, str, str], str] = {}
    for key, dataset in (
        results.groupby(["model", "paradigm", "task_type"], sort=False)["dataset"].first().items()
    ):
        model, paradigm, task_type = cast(tuple[str, str, str], key)
        first_dataset[(model, paradigm, task_type)] = str(dataset)
    table["link"] = [
        anchor(m, p, "") for m, p in zip(table["model"], table["paradigm"], strict=True)
    ]
    marks = router_points if len(router_points) else None
    charts = {"frontiers": _div(frontiers(table, marks), "chart-frontiers")}
    heatmaps = []
    for n, model in enumerate(dict.fromkeys(results["model"])):
        links = {
            (p, t): "#" + anchor(m, p, d) for (m, p, t), d in first_dataset.items() if m == model
        }
        heatmaps.append(
            _div(
                heatmap(per_type, model, links),
                f"chart-heatmap-{n}",
                "document.getElementById('{plot_id}').on('plotly_click', function (e) {"
                " var link = e.points[0].customdata[0]; if (link) { location.hash = link; } });",
            )
        )
    charts["outcomes"] = _div(outcome_bars(outcome_shares(results)), "chart-outcomes")
    costs = agent_costs(steps)
    several_agents = costs.groupby(["model", "paradigm"])["agent"].transform("nunique") > 1
    if several_agents.any():
        charts["agents"] = _div(agent_split(costs[several_agents]), "chart-agents")
    methods = sorted(set(results["energy_method"]) - {"unavailable"})
    agent_harnesses = sorted(set(results.loc[results["harness"] != "none", "harness"]))
    several_harnesses = len(agent_harnesses) > 1
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title="slmscope report: " + " vs ".join(r.label for r in runs),
            runs=[_run_meta(r) for r in runs],
            table=table.to_dict("records"),
            per_dataset=per_dataset.to_dict("records"),
            recommendations=recommend(results, seed=seed),
            agent_harnesses=agent_harnesses,
            harnesses=harness_effect(results, steps, seed=seed).to_dict("records")
            if several_harnesses
            else [],
            flips=harness_flips(results, seed=seed) if several_harnesses else [],
            tool_use=tools.to_dict("records"),
            idle=idle_arms(tools),
            constants=found[found["constant"].astype(bool)].to_dict("records")
            if not tools.empty
            else [],
            prior_texts=prior_texts(prior_pairs(found)) if not tools.empty else [],
            charts=charts,
            routers=router_sections,
            router_judged=JUDGED,
            heatmaps=heatmaps,
            samples=_samples(results, steps),
            comparison=compare_runs(runs[0].results, runs[1].results, seed=seed)
            if len(runs) == 2
            else None,
            energy_methods=methods,
            plotly_js=plotly.offline.get_plotlyjs(),
            generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        )
    )
    return page, len(results)


def _run_meta(run: RunData) -> dict[str, Any]:
    last = run.runs[-1] if run.runs else {}
    models: dict[str, Any] = {}
    for r in run.runs:
        models.update(json.loads(r.get("models") or "{}"))
    return {
        "label": run.label,
        "path": redacted(str(run.path)),
        "ids": [r["run_id"] for r in run.runs],
        "status": last.get("status"),
        "started": run.runs[0]["started_at"] if run.runs else None,
        "finished": last.get("finished_at"),
        "samples": len(run.results),
        "machine": json.loads(last.get("machine") or "{}"),
        "versions": json.loads(last.get("versions") or "{}"),
        "spec": json.loads(last.get("spec") or "{}"),
        "models": models,
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["f"] = _fmt
    env.filters["ci"] = _ci
    env.filters["pct"] = lambda v: "" if _num(v) is None else f"{float(v):.0%}"
    env.filters["tojson_safe"] = lambda v: json.dumps(v, default=str)
    return env


def _fmt(value: Any, spec: str = ".2f") -> str:
    number = _num(value)
    return "\N{EN DASH}" if number is None else format(number, spec)


def _ci(row: dict[str, Any], key: str, lo: str, hi: str, spec: str = ".2f") -> str:
    value = _num(row.get(key))
    if value is None:
        return "\N{EN DASH}"
    low, high = _num(row.get(lo)), _num(row.get(hi))
    return with_ci(
        value, math.nan if low is None else low, math.nan if high is None else high, spec
    )


def write_report(
    run_dirs: Sequence[Source],
    html: Path | None = None,
    *,
    seed: int = 0,
    routers: Sequence[Sequence[Figures]] | None = None,
) -> ReportInfo:
    """Write the report of one run directory (or compare two) to `html`, by default
    RUN_DIR/report.html; returns where, how many samples, and how long it took. `routers`:
    per run directory, the router figures already judged (judged here if None)."""
    start = time.perf_counter()
    labels = [label_of(p) for p in run_dirs]
    if len(set(labels)) < len(labels):  # two run folders of the same name
        labels = [f"{name} ({n})" for n, name in enumerate(labels, 1)]
    runs = [read_run(p, label) for p, label in zip(run_dirs, labels, strict=True)]
    page, samples = render(runs, seed=seed, routers=routers)
    if html is None and is_database_url(run_dirs[0]):
        raise ConfigError("a report of a database needs --html PATH")
    target = html or Path(run_dirs[0]) / "report.html"
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as err:
        partial.unlink(missing_ok=True)  # nothing half-written is left behind
        raise ConfigError(f"{target}: cannot write the report ({err.strerror or err})") from err
    return ReportInfo(target, samples, time.perf_counter() - start, target.stat().st_size)
