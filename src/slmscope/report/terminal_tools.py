"""The terminal's tool-use table and the warnings under it: arms that did not act, arms that
answered one label, and the differences between such arms that are label priors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich.table import Table

from slmscope.analysis.tool_use import prior_texts
from slmscope.report.escaping import terminal_text
from slmscope.report.terminal import summary_table


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def _acted(row: Mapping[Any, Any]) -> str:
    share, low, high = (float(row[k]) for k in ("acted", "acted_lo", "acted_hi"))
    if math.isnan(low) or math.isnan(high) or low == high:
        return _pct(share)
    return f"{share:.0%} [{low * 100:.0f},{high * 100:.0f}]"


def _acted_vs_not(row: Mapping[Any, Any]) -> str:
    """`0.80/0.20 +0.60`: the score of samples that acted, of those that did not, and the
    difference (its interval is in the report)."""
    did, did_not = float(row["score_acted"]), float(row["score_not_acted"])
    if math.isnan(did) or math.isnan(did_not):
        shown = ["-" if math.isnan(v) else f"{v:.2f}" for v in (did, did_not)]
        return "-" if shown == ["-", "-"] else "/".join(shown)
    return f"{did:.2f}/{did_not:.2f} {float(row['acted_diff']):+.2f}"


def _cut_line(table: pd.DataFrame) -> str:
    """The caption's line on turns the token budget cut, per arm (a column would push the
    table past 80 columns)."""
    arms = [
        f"{terminal_text(str(g['paradigm']))} {g['cut_turns']} ({g['cut_actions']})"
        for g in table.to_dict("records")
    ]
    return "\nturns the token budget cut (inside an action): " + ", ".join(arms) if arms else ""


def tool_use_summary(table: pd.DataFrame) -> Table:
    """Per agent arm (rows of `analysis.tool_use`): how often it acted, its calls, tool errors,
    answers drawn on an observation, example copies, and the score of the samples that acted
    against those that did not."""
    several = table["model"].nunique() > 1
    out = summary_table(
        "Tool use",
        "acted [95% CI, %]: a call reached a tool or specialist; calls, copies: per "
        "sample; err: failed tool calls; obs: answer drawn on an observation; acted/not: score "
        "of the samples that acted / did not, and the difference (other samples: not an effect)"
        + _cut_line(table),
    )
    if several:
        out.add_column("model", no_wrap=True, max_width=24)
    out.add_column("arm", no_wrap=True)
    for name in ("n", "acted", "calls", "err", "obs", "copies", "acted/not"):
        out.add_column(name, justify="right", no_wrap=True)
    for g in table.to_dict("records"):
        out.add_row(
            *([terminal_text(g["model"])] if several else []),
            terminal_text(g["paradigm"]),
            str(g["n"]),
            _acted(g),
            f"{g['calls_per_sample']:.1f}",
            _pct(float(g["tool_error_rate"])),
            _pct(float(g["observed"])),
            f"{g['copies_per_sample']:.1f}",
            _acted_vs_not(g),
        )
    return out


def tool_use_notes(
    idle: list[dict[str, Any]], priors: pd.DataFrame, pairs: list[dict[str, Any]]
) -> list[str]:
    """The lines under the table, escaped for Rich: each idle arm's warning, each constant
    (an arm that gave one answer to nearly every sample of a dataset), and which differences
    between constants are label priors (`analysis.prior_pairs`, one line per dataset)."""
    several = priors["model"].nunique() > 1 if len(priors) else False
    lines = [f"[bold yellow]warning:[/] {terminal_text(i['text'])}" for i in idle]
    if len(priors):
        for c in priors[priors["constant"].astype(bool)].to_dict("records"):
            who = f"{c['paradigm']} ({c['model']})" if several else str(c["paradigm"])
            lines.append(
                f"[yellow]constant:[/] {terminal_text(who)} on "
                f"{terminal_text(c['dataset'])} {terminal_text(c['note'])} (score "
                f"{c['score']:.2f}; majority class {c['majority_score']:.2f}"
                + ("" if math.isnan(c["chance_score"]) else f", chance {c['chance_score']:.2f}")
                + ")"
            )
    lines += [f"[yellow]prior:[/] {terminal_text(text)}" for text in prior_texts(pairs)]
    return lines
