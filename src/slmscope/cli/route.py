"""`slmscope route fit` and `route eval`: a paradigm router from stored results, no model calls."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from slmscope.analysis.router_verdict import judge, number, saved_text
from slmscope.analysis.routing import CvMode, Samples, comparison, fit, load_samples
from slmscope.cli.app import app, console, say, user_errors
from slmscope.errors import ConfigError, UserError
from slmscope.paradigms.router import COSTS, METHODS, CostName, Method, Objective, load_router
from slmscope.report.escaping import terminal_text

route_app = typer.Typer(
    help="Fit a paradigm router on a run's stored results, and judge it.", no_args_is_help=True
)
app.add_typer(route_app, name="route")


def _objective(kind: str, cost: str, limit: float | None, lam: float) -> Objective:
    if cost not in COSTS:
        raise ConfigError(f"unknown --cost {cost!r}; known: {', '.join(COSTS)}")
    cost_name: CostName = (
        "latency" if cost == "latency" else "energy" if cost == "energy" else "tokens"
    )
    if kind == "score":
        return Objective("score", cost_name)
    if kind == "budget":
        return Objective("budget", cost_name, limit=limit)
    if kind == "tradeoff":
        return Objective("tradeoff", cost_name, lam=lam)
    raise ConfigError(f"unknown --objective {kind!r}; known: score, budget, tradeoff")


def _method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown --method {name!r}; known: {', '.join(METHODS)}")
    return "type" if name == "type" else "features" if name == "features" else "knn"


def _table(title: str, rows: pd.DataFrame, best_fixed: str, cost: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("policy", "score [95% CI]", f"{cost} / sample [95% CI]"):
        table.add_column(name)
    for row in rows.to_dict("records"):
        policy = str(row["policy"])
        mark = " (best fixed)" if policy == best_fixed else ""
        table.add_row(
            terminal_text(policy + mark),
            f"{number(row['score'])} [{number(row['score_lo'])}, {number(row['score_hi'])}]",
            f"{number(row['cost'], 1)} [{number(row['cost_lo'], 1)}, {number(row['cost_hi'], 1)}]",
        )
    return table


def _report(samples: Samples, method: Method, objective: Objective, folds: int, k: int) -> None:
    say(
        f"{len(samples.problems)} samples of {samples.model}, arms {', '.join(samples.arms)}; "
        f"objective: {objective.describe()}; method {method}"
    )
    modes: tuple[tuple[CvMode, str], ...] = (
        ("sample", "by sample within datasets"),
        ("dataset", "leave one dataset out"),
    )
    for mode, title in modes:
        try:
            verdict = judge(samples, method, objective, mode=mode, n_folds=folds, k=k)
        except UserError as err:
            say(f"cross-validation {title}: {err}")
            continue
        table = _table(
            f"Router, cross-validated {title}", verdict.rows, verdict.best_fixed, verdict.cost
        )
        console.print(table)
        say(f"share of the oracle gap closed: {number(verdict.gap_closed)}")
        say(
            f"the best arm per dataset, chosen afterwards: {number(verdict.dataset_oracle)}; "
            f"share of its gap closed: {number(verdict.dataset_gap_closed)}"
        )
        say(saved_text(verdict))


@route_app.command("fit")
def route_fit(
    run_dir: str = typer.Argument(..., help="A run directory, or a postgresql:// database."),
    out: Path = typer.Option(Path("router.json"), "--out", "-o", help="Where to save it."),
    objective: str = typer.Option("score", help="score, budget or tradeoff."),
    cost: str = typer.Option("tokens", help="tokens, latency or energy."),
    limit: float | None = typer.Option(None, help="Per-sample budget of the cost (budget)."),
    lam: float = typer.Option(0.0, "--lambda", help="Weight of the cost (tradeoff)."),
    method: str = typer.Option("knn", help="type, features or knn."),
    k: int = typer.Option(10, help="Neighbours the knn method reads."),
    folds: int = typer.Option(5, help="Folds of the cross-validation by sample."),
    model: str | None = typer.Option(None, help="The model, where the run holds several."),
) -> None:
    """Cross-validate a router against every fixed arm and the oracle, then fit it on all the
    run's samples and save it."""
    with user_errors():
        goal = _objective(objective, cost, limit, lam)
        how = _method(method)
        samples = load_samples(run_dir, cost=goal.cost, model=model)
        _report(samples, how, goal, folds, k)
        router = fit(samples, how, goal, k=k)
        router.save(out)
        say(f"router: {out} (fitted on all {len(samples.problems)} samples)")


@route_app.command("eval")
def route_eval(
    router_file: Path = typer.Argument(..., help="A router saved by `route fit`."),
    run_dir: str = typer.Argument(..., help="Another run with the router's arms (or database)."),
    model: str | None = typer.Option(None, help="The model, where the run holds several."),
) -> None:
    """Score a saved router on another run's stored results."""
    with user_errors():
        router = load_router(router_file)
        samples = load_samples(run_dir, cost=router.objective.cost, model=model)
        missing = [a for a in router.arms if a not in samples.arms]
        if missing:
            raise ConfigError(f"{run_dir}: lacks the router's arms {', '.join(missing)}")
        kept = Samples(
            samples.problems,
            samples.score[list(router.arms)],
            samples.cost[list(router.arms)],
            samples.model,
            samples.runs,
        )
        if router.model and router.model != samples.model:
            say(f"note: the router was fitted on {router.model}; this run is {samples.model}")
        chosen = [router.choose(p) for p in kept.problems]
        rows, info = comparison(kept, chosen, router.objective)
        console.print(
            _table(
                f"Router {router_file.name} on {run_dir}",
                rows,
                str(info["best_fixed"]),
                router.objective.cost,
            )
        )
        say(f"share of the oracle gap closed: {number(info['gap_closed'])}")
        say(
            f"the best arm per dataset, chosen afterwards: {number(info['dataset_oracle'])}; "
            f"share of its gap closed: {number(info['dataset_gap_closed'])}"
        )
