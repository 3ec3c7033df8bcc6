"""The terminal results table, laid out to fit 80 columns."""

from __future__ import annotations

from rich.table import Table

from slmscope.analysis.summary import GroupSummary


def results_table(groups: list[GroupSummary]) -> Table:
    """Score, completion rate ('ok'), mean tokens and latency per model x paradigm x dataset."""
    models = sorted({g.model for g in groups})
    several = len(models) > 1
    title = "Results" if several or not models else f"Results: {models[0]}"
    table = Table(title=title, caption="ok = completion rate (share of samples with outcome ok)")
    if several:
        table.add_column("model", no_wrap=True)
    table.add_column("paradigm", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    for name in ("n", "score", "ok", "tokens", "latency s"):
        table.add_column(name, justify="right", no_wrap=True)
    for g in groups:
        cells = [g.model] if several else []
        cells += [
            g.paradigm,
            g.dataset,
            str(g.n),
            f"{g.score:.3f}",
            f"{g.completion_rate:.0%}",
            f"{g.mean_tokens:,.0f}",
            f"{g.mean_latency_s:.2f}",
        ]
        table.add_row(*cells)
    return table
