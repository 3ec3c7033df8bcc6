"""The command line's application, its consoles, and the one place user errors are printed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from slmscope.errors import UserError

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


@contextmanager
def user_errors() -> Iterator[None]:
    """A mistake the user can fix is one line on stderr and exit status 2; anything else is a
    bug in slmscope and stays a traceback."""
    try:
        yield
    except UserError as err:
        notes = "".join(f" ({n})" for n in getattr(err, "__notes__", []))
        err_console.print(
            f"[bold red]error:[/] {escape(f'{err}{notes}')}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None


def say(text: str, *, err: bool = False) -> None:
    """One plain line: escaped (paths and model output may hold brackets), never re-wrapped."""
    (err_console if err else console).print(escape(text), soft_wrap=True, highlight=False)


PullReport = Callable[[str, int, int | None], None]  # phase, bytes since the last call, total


def pull_progress() -> tuple[Progress, PullReport]:
    """A download bar per pull phase, and the callback that advances it."""
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
