"""The report's charts, as Plotly figures (rendered to HTML divs, plotly.js inlined once)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from slmscope.analysis.overview import pareto_front

PARADIGM_ORDER = ("base", "single", "multi", "single+fallback", "multi+fallback")
COST_AXES = (
    ("tokens_per_sample", "tokens / sample"),
    ("latency_s", "latency s / sample"),
    ("energy_per_sample_j", "energy J / sample"),
)
OUTCOME_COLORS = {
    "ok": "#2e7d32",
    "no_final_answer": "#f9a825",
    "malformed_action": "#ef6c00",
    "unknown_tool": "#8d6e63",
    "tool_error": "#6d4c41",
    "max_steps": "#c62828",
    "context_overflow": "#ad1457",
    "routing_failure": "#6a1b9a",
    "delegation_loop": "#4527a0",
    "backend_error": "#37474f",
    "timeout": "#000000",
}


def _order(paradigms: pd.Series) -> list[str]:
    seen = list(dict.fromkeys(paradigms))
    known = [p for p in PARADIGM_ORDER if p in seen]
    return known + [p for p in seen if p not in known]


def heatmap(per_type: pd.DataFrame, model: str, anchors: dict[tuple[str, str], str]) -> go.Figure:
    """Mean score per task type x paradigm for one model; a click opens the samples."""
    frame = per_type[per_type["model"] == model]
    paradigms = _order(frame["paradigm"])
    types = sorted(frame["task_type"].unique())
    grid = frame.pivot_table(index="task_type", columns="paradigm", values="score").reindex(
        index=types, columns=paradigms
    )
    counts = frame.pivot_table(index="task_type", columns="paradigm", values="n").reindex(
        index=types, columns=paradigms
    )
    links = [[anchors.get((p, t), "") for p in paradigms] for t in types]
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=paradigms,
            y=types,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            text=[[f"{v:.2f}" if pd.notna(v) else "" for v in row] for row in grid.to_numpy()],
            texttemplate="%{text}",
            customdata=[
                [[link, n] for link, n in zip(lrow, crow, strict=True)]
                for lrow, crow in zip(links, counts.to_numpy(), strict=True)
            ],
            hovertemplate="%{y} · %{x}<br>score %{z:.3f} (n=%{customdata[1]})"
            "<br>click: the samples<extra></extra>",
            colorbar={"title": "score"},
        )
    )
    fig.update_layout(
        title=f"Score per task type and paradigm: {model}",
        height=120 + 45 * len(types),
        margin={"l": 130, "r": 20, "t": 50, "b": 40},
    )
    return fig


ROUTER_MARKS = {  # a marked point's kind: its marker and colour on the tokens panel
    "router": {"symbol": "star-diamond", "color": "#d84315"},
    "oracle": {"symbol": "hexagram-open", "color": "#111"},
}


def frontiers(table: pd.DataFrame, marks: pd.DataFrame | None = None) -> go.Figure:
    """Score against each cost, one point per model x paradigm, Pareto points ringed and
    joined. A cost nobody measured (energy, here and there) gets no panel. `marks` (model,
    kind: router or oracle, name, score and tokens with their 95% intervals) are drawn on the
    tokens panel, one trace per kind and model, with their intervals as error bars."""
    axes = [(c, t) for c, t in COST_AXES if table[c].notna().any()]
    fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[t for _, t in axes])
    symbols = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star"]
    models = list(dict.fromkeys(table["model"]))
    for col, (cost, title) in enumerate(axes, start=1):
        front = pareto_front(table, cost)
        for m, model in enumerate(models):
            mine = table[table["model"] == model]
            fig.add_trace(
                go.Scatter(
                    x=mine[cost],
                    y=mine["score"],
                    mode="markers+text",
                    text=mine["paradigm"],
                    textposition="top center",
                    name=model,
                    legendgroup=model,
                    showlegend=col == 1,
                    marker={
                        "size": [16 if front[i] else 10 for i in mine.index],
                        "symbol": symbols[m % len(symbols)],
                        "line": {
                            "width": [3 if front[i] else 0 for i in mine.index],
                            "color": "#111",
                        },
                    },
                    customdata=mine[
                        ["paradigm", "n", "completion_rate", "tokens_per_sample", "latency_s"]
                    ].to_numpy(),
                    hovertemplate=f"<b>{model}</b> · %{{customdata[0]}}<br>score %{{y:.3f}}"
                    f"<br>{title} %{{x:,.2f}}<br>n=%{{customdata[1]}}, completion "
                    "%{customdata[2]:.0%}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        on_front = table[front].sort_values(cost)
        fig.add_trace(
            go.Scatter(
                x=on_front[cost],
                y=on_front["score"],
                mode="lines",
                line={"dash": "dot", "color": "#555"},
                name="Pareto front",
                legendgroup="front",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        if cost == "tokens_per_sample" and marks is not None:
            _marks(fig, marks, col)
        fig.update_xaxes(title_text=title, type="log", row=1, col=col)
        fig.update_yaxes(title_text="score" if col == 1 else None, row=1, col=col)
    fig.update_layout(
        title="Quality against cost (ringed: on the Pareto front, nothing both cheaper and better)",
        height=460,
        margin={"t": 80},
    )
    return fig


def _marks(fig: go.Figure, marks: pd.DataFrame, col: int) -> None:
    """The router and the oracle of each model as marked points with their intervals."""
    seen: set[str] = set()  # one legend entry per kind, which shows or hides every model's
    for (kind, model), mine in marks.groupby(["kind", "model"], sort=False):
        style = ROUTER_MARKS[str(kind)]
        name = str(mine["name"].iloc[0])
        first, who = name not in seen, html.escape(str(model))
        seen.add(name)
        fig.add_trace(
            go.Scatter(
                x=mine["tokens"],
                y=mine["score"],
                mode="markers",
                name=name,
                legendgroup=name,
                showlegend=first,
                marker={"size": 15, "symbol": style["symbol"], "color": style["color"]},
                error_y={
                    "type": "data",
                    "array": mine["score_hi"] - mine["score"],
                    "arrayminus": mine["score"] - mine["score_lo"],
                    "thickness": 1,
                },
                error_x={
                    "type": "data",
                    "array": mine["tokens_hi"] - mine["tokens"],
                    "arrayminus": mine["tokens"] - mine["tokens_lo"],
                    "thickness": 1,
                },
                hovertemplate=f"<b>{who}</b> · {name}<br>score %{{y:.3f}}"
                "<br>tokens / sample %{x:,.0f}<extra></extra>",
            ),
            row=1,
            col=col,
        )


def outcome_bars(shares: pd.DataFrame) -> go.Figure:
    """Outcome shares per model x paradigm, stacked."""
    shares = shares.assign(where=shares["model"] + " · " + shares["paradigm"])
    fig = go.Figure()
    for outcome in [o for o in OUTCOME_COLORS if o in set(shares["outcome"])]:
        part = shares[shares["outcome"] == outcome]
        fig.add_trace(
            go.Bar(
                x=part["where"],
                y=part["share"],
                name=outcome,
                marker_color=OUTCOME_COLORS[outcome],
                hovertemplate=f"{outcome}: %{{y:.0%}}<extra>%{{x}}</extra>",
            )
        )
    order = [
        f"{m} · {p}"
        for m in dict.fromkeys(shares["model"])
        for p in _order(shares["paradigm"])
        if f"{m} · {p}" in set(shares["where"])
    ]
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_layout(
        barmode="stack",
        title="Outcome of each sample, per paradigm",
        yaxis={"tickformat": ".0%", "title": "share of samples"},
        height=420,
    )
    return fig


def agent_split(costs: pd.DataFrame) -> go.Figure:
    """Tokens per agent, per model x paradigm: where the multi agent's cost goes."""
    costs = costs.assign(where=costs["model"] + " · " + costs["paradigm"])
    fig = go.Figure()
    for agent in dict.fromkeys(costs["agent"]):
        part = costs[costs["agent"] == agent]
        custom: Any = part[["calls", "latency_s", "token_share", "energy_j"]].to_numpy()
        fig.add_trace(
            go.Bar(
                x=part["where"],
                y=part["tokens"],
                name=str(agent),
                customdata=custom,
                hovertemplate=f"{agent}: %{{y:,}} tokens (%{{customdata[2]:.0%}}), "
                "%{customdata[0]} calls, %{customdata[1]:.1f} s, %{customdata[3]:.1f} J"
                "<extra>%{x}</extra>",
            )
        )
    fig.update_layout(
        barmode="stack", title="Tokens by agent", yaxis={"title": "tokens (all samples)"}
    )
    return fig
