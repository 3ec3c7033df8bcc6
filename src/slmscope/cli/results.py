"""`slmscope report`, `export` and `trace`: reading a run back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape

from slmscope.analysis import (
    arms,
    harness_effect,
    harness_flips,
    idle_arms,
    prior_pairs,
    priors,
    summarize,
    tool_use,
)
from slmscope.analysis.overview import paradigm_table
from slmscope.analysis.router_verdict import Figures, router_figures
from slmscope.analysis.tables import load, load_steps, stale_count
from slmscope.cli.app import app, console, say, user_errors
from slmscope.errors import ConfigError
from slmscope.report.escaping import terminal_text
from slmscope.report.export import EXPORT_FORMATS, export_table
from slmscope.report.html import write_report
from slmscope.report.terminal import (
    clip,
    harness_summary,
    paradigm_summary,
    results_table,
    router_line,
    score_matrix,
)
from slmscope.report.terminal_tools import tool_use_notes, tool_use_summary
from slmscope.runs.store_pg import is_database_url, redacted
from slmscope.runs.stores import Source, open_existing


def print_summary(
    results: pd.DataFrame,
    steps: pd.DataFrame | None = None,
    routers: Sequence[Figures] = (),
) -> None:
    """Per dataset (one table of scores with intervals, or a score matrix when paradigms are
    compared), then the paradigms' quality and cost, then a line per model on the router
    (`routers`, judged by router_figures), then the harnesses' where there are several, then
    the agents' tool use where any arm had tools (with warnings for arms that did not act or
    answered one label)."""
    if results.empty:
        return
    results = arms(results)
    summary = summarize(results)
    if results["paradigm"].nunique() > 1:
        console.print(score_matrix(summary))
        console.print(paradigm_summary(paradigm_table(results)))
    else:
        console.print(results_table(summary))
    for figures in routers:
        line = router_line(figures, several=len(routers) > 1)
        console.print(line, highlight=False, soft_wrap=True)
    if results.loc[results["harness"] != "none", "harness"].nunique() > 1:
        console.print(harness_summary(harness_effect(results, steps), harness_flips(results)))
    print_tool_use(results)


def print_tool_use(results: pd.DataFrame) -> None:
    """The tool-use table and the lines under it, where any arm had tools."""
    table = tool_use(results)
    if table.empty:
        return
    console.print(tool_use_summary(table))
    found = priors(results)
    for line in tool_use_notes(idle_arms(table), found, prior_pairs(found)):
        console.print(line, highlight=False, soft_wrap=True)


def source_of(text: str) -> Source:
    """A run directory, or a database named by its URL (kept as text: a Path mangles it)."""
    return text if is_database_url(text) else Path(text)


def write_report_of(
    run_dirs: Sequence[Source],
    html: Path | None,
    routers: Sequence[Sequence[Figures]] | None = None,
) -> None:
    """Write the report (see write_report; `routers`: per run, the router figures already
    judged) and say where."""
    for source in run_dirs:
        if stale := stale_count(source):
            say(
                f"{redacted(str(source))}: {stale} stored sample(s) no longer match their data "
                "(their rows changed): left out of the tables and the report"
            )
    info = write_report(run_dirs, html, routers=routers)
    console.print(
        escape(
            f"report: {info.path} ({info.samples} samples, {info.bytes / 1e6:.1f} MB, "
            f"{info.seconds:.1f} s); open it in a browser"
        ),
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def report(
    run_dirs: list[str] = typer.Argument(
        ..., help="A run directory (or postgresql:// database), or two to compare side by side."
    ),
    html: Path | None = typer.Option(
        None, help="Where to write the page (default: FIRST_RUN_DIR/report.html)."
    ),
) -> None:
    """Write the self-contained HTML report of a run (or compare two) and print the summary."""
    with user_errors():
        if len(run_dirs) > 2:
            raise ConfigError("report takes one run directory, or two to compare")
        sources = [source_of(s) for s in run_dirs]
        routers = []
        for source in sources:
            frame = load(source)
            if frame.empty:
                raise ConfigError(f"{redacted(str(source))}: the run holds no results yet")
            say(f"{redacted(str(source))}:")
            routers.append(router_figures(source, frame))
            print_summary(frame, load_steps(source), routers[-1])
        write_report_of(sources, html, routers)


@app.command()
def export(
    run_dir: str = typer.Argument(..., help="A run directory, or a postgresql:// database."),
    format: str = typer.Option("parquet", "--format", "-f", help="parquet, csv or jsonl."),
    out: Path | None = typer.Option(None, help="Folder for the files (default: RUN_DIR/export)."),
) -> None:
    """Write the run's results and steps tables as parquet, CSV or JSON Lines files."""
    with user_errors():
        if format not in EXPORT_FORMATS:
            raise ConfigError(f"unknown format {format!r}; available: {', '.join(EXPORT_FORMATS)}")
        source = source_of(run_dir)
        if out is None and isinstance(source, str):
            raise ConfigError("exporting a database needs --out FOLDER")
        folder = out or Path(source) / "export"
        tables = {"results": load(source), "steps": load_steps(source)}
        for name, frame in tables.items():
            path = folder / f"{name}.{format}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                export_table(frame, path, format)
            except OSError as err:
                raise ConfigError(f"{path}: cannot write it ({err.strerror or err})") from err
            say(f"{path}: {len(frame)} rows")


# --- trace ----------------------------------------------------------------------------------


def _clip(text: object, limit: int = 600) -> str:
    """Shortened, markup-escaped and control characters shown: model and tool output may hold
    anything, brackets and escape sequences included."""
    return terminal_text(clip(text, limit))


@app.command()
def trace(
    run_dir: str,
    sample_id: str,
    paradigm: str | None = typer.Option(None, help="Only this paradigm."),
    model: str | None = typer.Option(None, help="Only this model."),
    harness: str | None = typer.Option(None, help="Only this harness (strict, repair, ...)."),
    full: bool = typer.Option(False, help="Show whole prompts and replies."),
) -> None:
    """One sample's steps, readably: each model call with its agent, tool and observation."""
    with user_errors():
        store = open_existing(source_of(run_dir))
        try:
            stored = [r for r in store.results() if r.sample_id == sample_id]
            results = [
                r
                for r in stored
                if paradigm in (None, r.paradigm)
                and model in (None, r.model)
                and harness in (None, r.harness)
            ]
            if not results:
                where = sorted({f"{r.model} / {r.paradigm} / {r.harness}" for r in stored})
                raise ConfigError(
                    f"no sample {sample_id!r} in {redacted(run_dir)}"
                    + (f" as asked; it is stored under: {', '.join(where)}" if where else "")
                )
            limit = 100_000 if full else 600
            for r in results:
                console.rule(
                    _clip(f"{r.model} / {r.paradigm} / {r.harness} / {r.dataset} / {sample_id}")
                )
                agent = f" (agent: {r.agent_outcome})" if r.agent_outcome else ""
                console.print(
                    f"outcome [bold]{r.outcome}[/]{agent}, score {r.score:.2f}, "
                    f"answer {_clip(repr(r.final_answer))}, gold {_clip(repr(r.gold))}, "
                    f"{r.total_tokens} tokens, {r.latency_s:.2f} s",
                    highlight=False,
                    soft_wrap=True,
                )
                for s in store.steps(r.cell_key):
                    tokens = (
                        f"{s.prompt_tokens}+{s.completion_tokens} tokens"
                        if s.prompt_tokens is not None
                        else "no reply"
                    )
                    repair = " (repair)" if s.repair else ""
                    console.print(
                        f"[cyan]{_clip(s.agent)} turn {s.turn}{repair}[/] {tokens}"
                        + (f", {s.latency_s:.2f} s" if s.latency_s else ""),
                        highlight=False,
                    )
                    if full:
                        for m in json.loads(s.messages):
                            console.print(
                                f"  [dim]{_clip(m['role'])}:[/] {_clip(m['content'], limit)}",
                                markup=True,
                                highlight=False,
                            )
                    console.print(f"  [green]reply:[/] {_clip(s.output, limit)}", highlight=False)
                    if s.tool:
                        console.print(
                            f"  [yellow]tool {_clip(s.tool)}[/] {_clip(s.tool_input, limit)} -> "
                            f"{_clip(s.observation, limit)}",
                            highlight=False,
                        )
                    if s.error:
                        console.print(f"  [red]error:[/] {_clip(s.error)}", highlight=False)
        finally:
            store.close()
