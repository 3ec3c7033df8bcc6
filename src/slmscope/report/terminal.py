"""The terminal results table, laid out to fit 80 columns."""

from __future__ import annotations

import math

import pandas as pd
from rich import box
from rich.table import Table

from slmscope.analysis.router_verdict import Figures, Refused, number
from slmscope.report.escaping import terminal_text


def with_ci(value: float, low: float, high: float, spec: str = ".2f", sep: str = ", ") -> str:
    """A value with its interval, e.g. `0.42 [0.32, 0.52]`; the value alone where the
    interval is missing or empty; `-` where there is no value (served traffic has no score)."""
    if math.isnan(value):
        return "-"
    if math.isnan(low) or math.isnan(high) or low == high:
        return format(value, spec)
    return f"{value:{spec}} [{low:{spec}}{sep}{high:{spec}}]"


def clip(text: object, limit: int) -> str:
    """Text cut to `limit` characters, saying how much was left out; '' for None or NaN."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    shown = str(text).strip()
    return shown if len(shown) <= limit else shown[:limit] + f" [... {len(shown) - limit} more]"


def results_table(summary: pd.DataFrame) -> Table:
    """Score with its 95% interval, completion rate ('ok'), mean tokens and latency per
    model x paradigm x dataset (rows of `analysis.summarize`)."""
    models = sorted(set(summary["model"])) if len(summary) else []
    paradigms = sorted(set(summary["paradigm"])) if len(summary) else []
    several, mixed = len(models) > 1, len(paradigms) > 1
    title = "Results" + ("" if several or not models else f": {terminal_text(models[0])}")
    title += "" if mixed or not paradigms else f", {terminal_text(paradigms[0])}"
    caption = "score [95% bootstrap CI] (-: served traffic, no reference); ok = completion rate"
    table = Table(title=title, caption=caption)
    if several:
        table.add_column("model", no_wrap=True)
    if mixed:
        table.add_column("paradigm", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    for name in ("n", "score", "ok", "tokens", "lat. s"):
        table.add_column(name, justify="right", no_wrap=True)
    for g in summary.to_dict("records"):
        cells = [terminal_text(g["model"])] if several else []
        cells += [terminal_text(g["paradigm"])] if mixed else []
        cells += [
            terminal_text(g["dataset"]),
            str(g["n"]),
            with_ci(float(g["score"]), float(g["score_lo"]), float(g["score_hi"])),
            f"{g['completion_rate']:.0%}",
            f"{g['tokens_mean']:,.0f}",
            f"{g['latency_mean']:.2f}",
        ]
        table.add_row(*cells)
    return table


def summary_table(title: str, caption: str) -> Table:
    """A summary table as every one here is drawn: a simple head, no padding at the edges."""
    return Table(
        title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, caption=caption
    )


def _evaluated(table: pd.DataFrame) -> str:
    """The caption's line on prompt tokens evaluated, not reused from a KV prefix, per arm (one
    model's run; the HTML report has it for every model)."""
    if table["model"].nunique() > 1 or table["prompt_evaluated"].isna().all():
        return ""
    shares = ", ".join(
        f"{terminal_text(str(p))} {v:.0%}"
        for p, v in zip(table["paradigm"], table["prompt_evaluated"], strict=True)
        if not math.isnan(v)
    )
    return f"\nprompt tokens evaluated (not reused): {shares}"


def paradigm_summary(table: pd.DataFrame) -> Table:
    """The reference study's Table 2 for this run (rows of `analysis.paradigm_table`)."""
    several = table["model"].nunique() > 1
    out = summary_table(
        "Paradigms",
        "score [95% CI]; ok = completion rate; energy per sample"
        + (" (estimate)" if "estimate" in set(table["energy_method"]) else "")
        + _evaluated(table),
    )
    if several:
        out.add_column("model", no_wrap=True)
    out.add_column("paradigm", no_wrap=True)
    for name in ("NRQ", "score", "ok", "lat. s", "tok/smp", "tok/s", "J/smp"):
        out.add_column(name, justify="right", no_wrap=True)
    for g in table.to_dict("records"):
        energy = float(g["energy_per_sample_j"])
        out.add_row(
            *([terminal_text(g["model"])] if several else []),
            terminal_text(g["paradigm"]),
            "" if math.isnan(g["nrq"]) else f"{g['nrq']:+.2f}",
            with_ci(float(g["score"]), float(g["score_lo"]), float(g["score_hi"]), sep=","),
            f"{g['completion_rate']:.0%}",
            f"{g['latency_s']:.2f}",
            f"{g['tokens_per_sample']:,.0f}",
            f"{g['tokens_per_s']:,.0f}",
            "-" if math.isnan(energy) else f"{energy:.1f}",
        )
    return out


def score_matrix(summary: pd.DataFrame) -> Table:
    """Mean score per dataset (rows) and paradigm (columns): the per-dataset view of a run
    that compares paradigms, narrow enough for 80 columns (intervals are in the report)."""
    paradigms = list(dict.fromkeys(summary["paradigm"]))
    several = summary["model"].nunique() > 1
    table = Table(
        title="Score per dataset",
        caption="mean score; ok = completion rate",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    if several:
        table.add_column("model", no_wrap=True, max_width=24)
    table.add_column("dataset", no_wrap=True)
    for paradigm in paradigms:
        table.add_column(terminal_text(paradigm), justify="right", no_wrap=True)
    cells = {
        (str(g["model"]), str(g["dataset"]), str(g["paradigm"])): g
        for g in summary.to_dict("records")
    }
    for model, dataset in dict.fromkeys((m, d) for m, d, _ in cells):
        row = [terminal_text(model)] if several else []
        row.append(terminal_text(dataset.removeprefix("builtin:")))
        for paradigm in paradigms:
            cell = cells.get((model, dataset, paradigm))
            shown = "-" if cell is None or math.isnan(cell["score"]) else f"{cell['score']:.2f}"
            row.append(f"{shown} ok {cell['completion_rate']:.0%}" if cell else "")
        table.add_row(*row)
    return table


def _delta(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return ""
    if math.isnan(low) or math.isnan(high):
        return f"{value:+.2f}"
    return f"{value:+.2f} [{low:+.2f},{high:+.2f}]"


def harness_summary(table: pd.DataFrame, flips: list[dict[str, object]]) -> Table:
    """Each agent paradigm under each harness, beside base (rows of `analysis.harness_effect`):
    the harness effect (against strict) next to the paradigm effect (against base)."""
    several = table["model"].nunique() > 1
    flipped = [
        f"{f['task_type']} ("
        + ", ".join(f"{h} -> {p}" for h, p in dict(f["by_harness"]).items())  # type: ignore[call-overload]
        + ")"
        for f in flips
        if f["flips"]
    ]
    out = summary_table(
        "Harnesses",
        "ok = completion; fail = protocol failures (no answer, malformed, repeats, "
        "example copies); score change [95% CI] on the same samples\n"
        + (
            "the recommendation changes with the harness for " + "; ".join(flipped)
            if flipped
            else "the recommendation is the same under every harness"
        ),
    )
    if several:
        out.add_column("model", no_wrap=True)
    for name in ("paradigm", "harness"):
        out.add_column(name, no_wrap=True)
    for name in ("ok", "fail", "score", "vs strict", "vs base"):
        out.add_column(name, justify="right", no_wrap=True)
    for g in table.to_dict("records"):
        out.add_row(
            *([terminal_text(g["model"])] if several else []),
            terminal_text(g["paradigm"]),
            terminal_text(g["harness"]),
            f"{g['completion_rate']:.0%}",
            f"{g['protocol_failure']:.0%}",
            f"{g['score']:.2f}",
            _delta(float(g["vs_strict"]), float(g["vs_strict_lo"]), float(g["vs_strict_hi"])),
            _delta(float(g["vs_base"]), float(g["vs_base_lo"]), float(g["vs_base_hi"])),
        )
    return out


def router_line(figures: Figures, *, several: bool = False) -> str:
    """One line on the router judged on a model's samples (markup escaped), e.g.
    `router (cross-validated by sample): 0.43 vs best fixed base 0.39, oracle 0.60; gap closed
    0.20; best arm per dataset 0.47, its gap closed 0.50`, or why none could be judged.
    `several`: name the model (a run of several)."""
    head = "router (cross-validated by sample): "
    if several:
        head = f"{figures.model}: {head}"
    if isinstance(figures, Refused):
        return terminal_text(f"{head}not judged: {figures.reason}")
    best = figures.best_fixed
    return terminal_text(
        f"{head}{number(figures.score_of('router'))} vs best fixed {best} "
        f"{number(figures.score_of('arm', best))}, oracle {number(figures.score_of('oracle'))}; "
        f"gap closed {number(figures.gap_closed)}; best arm per dataset "
        f"{number(figures.dataset_oracle)}, its gap closed {number(figures.dataset_gap_closed)}"
    )
