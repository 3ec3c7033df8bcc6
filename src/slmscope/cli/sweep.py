"""`slmscope run`, `sweep` and `quickstart`: a spec from the options or a file, then
`runs.sweep` with its events rendered (progress.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from slmscope.cli.app import (
    app,
    console,
    say,
    user_errors,
)
from slmscope.cli.progress import SweepView
from slmscope.cli.results import print_summary, write_report_of
from slmscope.errors import ConfigError
from slmscope.metering.energy import DEFAULT_CORE_W, DEFAULT_IDLE_W
from slmscope.models import GenerationConfig
from slmscope.models.catalog import DEFAULT_MODEL
from slmscope.models.kv_states import DEFAULT_BUDGET_MB
from slmscope.paradigms import DEFAULT_HARNESS, HARNESSES, PARADIGM_NAMES
from slmscope.runs.estimate import PlanRow, estimate
from slmscope.runs.plan import interpret
from slmscope.runs.spec import RunSpec
from slmscope.runs.spec_file import load_spec
from slmscope.runs.store_pg import redacted
from slmscope.runs.sweep import SweepSummary, sweep


def run_and_show(
    spec: RunSpec,
    out: Path,
    *,
    retry_failed: bool = False,
    db: str | None = None,
    cache: bool = False,
    ray: str | None = None,
) -> SweepSummary:
    """The sweep with its progress shown, then the summary tables and the report (in the run
    directory, also when the results are in a database)."""
    view = SweepView()
    # SIGTERM (a job scheduler, `kill`, a container stopping) is Ctrl-C: finished samples kept,
    # the run marked interrupted, one line said.
    before = signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        summary = sweep(spec, out, view, retry_failed=retry_failed, db=db, cache=cache, ray=ray)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, before)
        view.close()
    print_summary(summary.results(), summary.steps())
    write_report_of([summary.source], out / "report.html")
    failed, first = summary.server_failures()
    if failed:
        say(
            f"error: all {failed} samples of this run ended in a backend error, so it measured "
            f"the server, not the model (the first: {first}); fix it, then run again with "
            "--retry-failed",
            err=True,
        )
        raise typer.Exit(1)
    return summary


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handled as SIGINT is: by the event loop's handler (which cancels the sweep) or
    Python's. Where SIGINT is ignored (a background job of a script), Ctrl-C's exception."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


# How a sweep is carried out (not what it measures): shared by `run` and `sweep`.
RetryFailed = Annotated[
    bool, typer.Option(help="Run again the samples that ended in a backend error or a timeout.")
]
Database = Annotated[
    str | None,
    typer.Option(help="Store results in this PostgreSQL database (postgresql://...) instead."),
]
Cache = Annotated[
    bool,
    typer.Option(help="Replay replies to requests made before to the same model (full identity)."),
]
Executor = Annotated[
    str, typer.Option(help="'local' (this process) or 'ray' (each model a Ray task; extra ray).")
]
RayAddress = Annotated[
    str,
    typer.Option(help="With --executor ray: 'local' starts Ray here; or 'auto', ray://HOST:10001."),
]


def ray_of(executor: str, address: str) -> str | None:
    """The Ray address to run on, or None to run in this process."""
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; available: local, ray")
    return address if executor == "ray" else None


def _default_out(name: str) -> Path:
    return Path("runs") / name


@app.command()
def run(
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="Catalog id, .gguf path, "
        "hf:OWNER/REPO/FILE.gguf, or a served model's name with "
        "--base-url. Repeatable.",
    ),
    paradigm: list[str] = typer.Option(
        ["base"],
        "--paradigm",
        "-p",
        help=f"One of {', '.join(PARADIGM_NAMES)}. Repeatable: all run on the same samples.",
    ),
    harness: list[str] = typer.Option(
        [DEFAULT_HARNESS],
        "--harness",
        help=f"How agents' turns are held to the protocol: {', '.join(HARNESSES)}. Repeatable: "
        "all run on the same samples ('strict' is the reference study's).",
    ),
    roster: Path | None = typer.Option(
        None, help="YAML roster of specialists for the multi paradigm (name, role, tools)."
    ),
    tasks: list[str] = typer.Option(
        ["builtin"],
        "--tasks",
        "-t",
        help="'builtin', builtin:NAME, finben:NAME, a .yaml task config, or a task file "
        "(.jsonl/.json/.csv/.parquet). Repeatable. See `slmscope tasks list`.",
    ),
    data: Path | None = typer.Option(
        None,
        help="Folder of local dataset files: finben:NAME reads DATA/NAME.jsonl "
        "(otherwise the dataset hub).",
    ),
    skip_bad_rows: bool = typer.Option(
        False, help="Leave out unusable rows (recorded in table bad_rows) instead of stopping."
    ),
    limit: int | None = typer.Option(None, min=1, help="At most this many samples per dataset."),
    seed: int = typer.Option(0, help="Seed for sampling and generation."),
    out: Path | None = typer.Option(
        None, help="Run directory (default runs/<timestamp>). An existing one is resumed."
    ),
    max_tokens: int = typer.Option(256, help="New tokens per model call."),
    temperature: float = typer.Option(0.0),
    top_p: float = typer.Option(0.9),
    n_ctx: int = typer.Option(4096, help="Context window for the embedded backend."),
    threads: int | None = typer.Option(None, help="CPU threads (default: all cores)."),
    base_url: str | None = typer.Option(
        None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
    ),
    tool_mode: str = typer.Option(
        "tags",
        help="How agents call tools: 'tags' (the study's <action> protocol, any backend) or "
        "'native' (OpenAI tools=, served models whose server supports it).",
    ),
    stream: bool = typer.Option(True, help="Stream served replies (measures time to first token)."),
    request_timeout: float = typer.Option(
        120.0, min=0.001, help="Served models: seconds one request may take."
    ),
    retries: int = typer.Option(
        2, min=0, help="Served models: times a request that failed in passing is tried again."
    ),
    concurrency: int = typer.Option(
        1, min=1, help="Requests in flight to a served model (its server's slots)."
    ),
    kv_states_mb: int = typer.Option(
        DEFAULT_BUDGET_MB,
        min=0,
        help="Embedded models: MiB for saved KV states, so that each agent's prompt prefix is "
        "evaluated once, not at every switch (0: only the previous call's prefix is reused).",
    ),
    energy: str = typer.Option(
        "auto",
        help="Energy meter: auto (RAPL, else the estimate, for embedded models; NVML, else "
        "RAPL, for a server on this machine), nvml, rapl, estimate, off.",
    ),
    core_watts: float = typer.Option(
        DEFAULT_CORE_W, min=0, help="The estimate's power per busy CPU core, in W."
    ),
    idle_watts: float = typer.Option(
        DEFAULT_IDLE_W, min=0, help="The estimate's idle power attributed to the run, in W."
    ),
    retry_failed: RetryFailed = False,
    db: Database = None,
    cache: Cache = False,
    executor: Executor = "local",
    ray_address: RayAddress = "local",
) -> None:
    """Run models x paradigms x task sets; every sample is stored as it finishes."""
    with user_errors():
        spec = RunSpec(
            models=tuple(model),
            paradigms=tuple(paradigm),
            tasks=tuple(tasks),
            limit=limit,
            seed=seed,
            gen=GenerationConfig(
                max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
            ),
            n_ctx=n_ctx,
            n_threads=threads or os.cpu_count(),
            base_url=base_url,
            data_dir=str(data) if data else None,
            skip_bad_rows=skip_bad_rows,
            roster=str(roster) if roster else None,
            tool_mode=tool_mode,
            harnesses=tuple(dict.fromkeys(harness)),
            stream=stream,
            request_timeout_s=request_timeout,
            retries=retries,
            concurrency=concurrency,
            kv_states_mb=kv_states_mb,
            energy=energy,
            core_w=core_watts,
            idle_w=idle_watts,
        )
        target = out or _default_out(time.strftime("%Y%m%d-%H%M%S"))
        run_and_show(
            spec,
            target,
            retry_failed=retry_failed,
            db=db,
            cache=cache,
            ray=ray_of(executor, ray_address),
        )
    say(f"results: {redacted(db) if db else target / 'results.sqlite'}")


QUICKSTART_PARADIGMS = ("base", "single", "multi", "single+fallback")


@app.command()
def quickstart(
    model: str = typer.Option(DEFAULT_MODEL, help="The model to try."),
    out: Path = typer.Option(
        _default_out("quickstart"), help="Run directory (resumed if present)."
    ),
    paradigm: list[str] = typer.Option(
        list(QUICKSTART_PARADIGMS), "--paradigm", "-p", help="Paradigms to compare. Repeatable."
    ),
    harness: list[str] = typer.Option(
        [DEFAULT_HARNESS],
        "--harness",
        help="Agent harnesses (repeatable). The default, the same as `run`'s and `sweep`'s, "
        "holds the agents to call a tool before they answer, so that they are agents (see "
        "README).",
    ),
    limit: int = typer.Option(
        3,
        min=1,
        help="Samples per built-in dataset (8 datasets; the whole suite is 20 each). The "
        "same command with a larger limit adds samples to the same run directory.",
    ),
) -> None:
    """The main job: pull the default model if missing, run the built-in suite under every
    paradigm on the same samples, print the table."""
    start = time.perf_counter()
    spec = RunSpec(
        models=(model,),
        paradigms=tuple(paradigm),
        tasks=("builtin",),
        limit=limit,
        n_threads=os.cpu_count(),
        harnesses=tuple(dict.fromkeys(harness)),
    )
    with user_errors():
        run_and_show(spec, out)
    say(
        f"results: {out / 'results.sqlite'} (tables runs, results, steps; see README) in "
        f"{time.perf_counter() - start:.1f} s"
    )


@app.command("sweep")
def sweep_command(
    spec_file: Path = typer.Argument(..., help="A sweep spec (YAML): models, paradigms, tasks..."),
    out: Path = typer.Option(..., help="Run directory; the same command again resumes it."),
    plan_only: bool = typer.Option(
        False, "--plan", help="Print the cells and their estimated cost, run nothing."
    ),
    retry_failed: RetryFailed = False,
    db: Database = None,
    cache: Cache = False,
    executor: Executor = "local",
    ray_address: RayAddress = "local",
) -> None:
    """Run a sweep spec: every model x paradigm x harness x dataset sample it names (one run
    per seed), each stored as it finishes."""
    with user_errors():
        spec = load_spec(spec_file)
        if plan_only:
            for run_spec in spec.runs:
                cells = interpret(run_spec).cells
                console.print(plan_table(estimate(cells, db or out), run_spec.seed))
            return
        for run_spec in spec.runs:
            run_and_show(
                run_spec,
                out,
                retry_failed=retry_failed,
                db=db,
                cache=cache,
                ray=ray_of(executor, ray_address),
            )
    say(f"results: {redacted(db) if db else out / 'results.sqlite'}")


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def plan_table(rows: list[PlanRow], seed: int) -> Table:
    table = Table(title=f"Plan (seed {seed})", caption="estimates from samples already stored")
    for column in ("model", "paradigm", "harness", "dataset", "cells", "to do", "tokens", "time"):
        numeric = column in ("cells", "to do", "tokens")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        table.add_row(
            r.model,
            r.paradigm,
            r.harness,
            r.dataset,
            str(r.cells),
            str(r.todo),
            f"{r.tokens:,.0f}" if r.tokens is not None else "?",
            _duration(r.seconds) if r.seconds is not None else f"? ({r.basis})",
        )
    known = [r for r in rows if r.seconds is not None]
    if known:
        total = _duration(sum(r.seconds or 0 for r in known))
        table.caption = f"about {total} for the {sum(r.todo for r in known)} cells estimated"
    return table
