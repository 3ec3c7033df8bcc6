"""A sweep's events on the terminal: progress bars, and plain lines where stderr is no terminal."""

from __future__ import annotations

import threading
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from slmscope.cli.app import PullReport, err_console, pull_progress, say
from slmscope.runs.events import (
    BadRowsSkipped,
    Event,
    PullProgress,
    RetryingFailed,
    RunsAbandoned,
    SampleDone,
    SettingIgnored,
    StaleSamples,
    SweepInterrupted,
    SweepStarted,
    ToolLeftOut,
)

WAIT_S = 30.0  # a sample that takes longer than this is said to be waited for


class SweepView:
    """Renders a sweep's events on stderr: a live bar on a terminal (cells done of total, mean
    score, failures so far, the current model's throughput, ETA), a plain line about every 5%
    of the samples otherwise (logs, pipes, CI)."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("score {task.fields[score]:.2f}"),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task: TaskID | None = None
        self.score = 0.0
        self.started = time.monotonic()
        self.pulls: dict[str, tuple[Progress, PullReport]] = {}
        self.failed = 0
        self.per_model: dict[str, tuple[float, int]] = {}  # model -> (its start, samples)
        self.last = time.monotonic()  # the last sample done (a new model starts from there)
        self.stopped = threading.Event()
        self.waiter = threading.Thread(target=self._watch_waiting, daemon=True)

    def __call__(self, event: Event) -> None:
        match event:
            case PullProgress(model=model, phase="start", total=total):
                size = f" ({total / 1e6:,.0f} MB)" if total else ""
                say(f"pulling {model}{size}", err=True)
                progress, report = pull_progress()
                progress.start()
                self.pulls[model] = (progress, report)
            case PullProgress(model=model, phase=phase, advance=advance, total=total):
                self.pulls[model][1](phase, advance, total)
            case BadRowsSkipped(rows=rows, out=out):
                for bad in rows[:5]:
                    say(
                        f"skipped {bad.source}:{bad.line}: field {bad.field!r}: {bad.message}",
                        err=True,
                    )
                say(
                    f"{len(rows)} bad row(s) skipped; all are listed in "
                    f"{out / 'results.sqlite'}, table bad_rows",
                    err=True,
                )
            case SettingIgnored(setting=setting, why=why):
                say(f"{setting} is not used: {why}", err=True)
            case ToolLeftOut(tool=tool, why=why):
                say(f"the agents run without the {tool} tool: {why}", err=True)
            case RetryingFailed(count=count):
                say(
                    f"retrying {count} sample(s) that ended in a backend error or timeout", err=True
                )
            case StaleSamples(changed=changed, unmarked=unmarked, out=out):
                say(
                    f"{changed + unmarked} stored sample(s) in {out} no longer match their data "
                    f"({changed} rows changed, {unmarked} stored before rows were "
                    "fingerprinted): kept apart, left out of every table, run again",
                    err=True,
                )
            case RunsAbandoned(count=count):
                say(f"{count} earlier run(s) here were killed mid-way; marked abandoned", err=True)
            case SweepStarted(planned=planned, skipped=skipped, out=out):
                self._stop_pulls()
                self.last = time.monotonic()
                if skipped:
                    say(f"resuming: {skipped} of {planned} samples already in {out}", err=True)
                self.bar.start()
                if not self.waiter.is_alive():
                    self.waiter.start()
                self.task = self.bar.add_task(
                    "running",
                    total=planned - skipped,
                    score=0.0,
                    failed=0,
                    rate="",
                    visible=planned > skipped,
                )
            case SampleDone(result=r, done=done, todo=todo):
                self.score += r.score or 0.0
                self.failed += r.outcome != "ok"
                since, count = self.per_model.get(r.model, (self.last, 0))
                self.per_model[r.model] = (since, count + 1)
                self.last = time.monotonic()
                spent = self.last - since
                rate = f"{r.model} {60 * (count + 1) / spent:.1f}/min" if spent > 1 else ""
                where = f"{r.model} {r.paradigm} {r.dataset}"
                assert self.task is not None
                self.bar.update(
                    self.task,
                    advance=1,
                    score=self.score / done,
                    failed=self.failed,
                    rate=rate,
                    description=where,
                )
                if not err_console.is_terminal and (done % max(1, todo // 20) == 0 or done == todo):
                    say(
                        f"[{done}/{todo}] {where}  mean score {self.score / done:.2f}  "
                        f"failed {self.failed}  {rate}  {time.monotonic() - self.started:.0f} s",
                        err=True,
                    )
            case SweepInterrupted(done=done, out=out):
                self.close()
                say(
                    f"interrupted: {done} samples of this run are saved in {out}; run the same "
                    "command again to resume.",
                    err=True,
                )

    def _watch_waiting(self) -> None:
        """While no sample finishes, say so every WAIT_S seconds: a slow or silent server (or
        model) is visible, not a frozen bar."""
        while not self.stopped.wait(WAIT_S):
            waited = time.monotonic() - self.last
            if waited < WAIT_S:
                continue
            if err_console.is_terminal and self.task is not None:
                self.bar.update(self.task, description=f"waiting for the model, {waited:.0f} s")
            else:
                say(f"waiting for the model: no sample finished for {waited:.0f} s", err=True)

    def _stop_pulls(self) -> None:
        for progress, _ in self.pulls.values():
            progress.stop()
        self.pulls.clear()

    def close(self) -> None:
        self.stopped.set()
        self._stop_pulls()
        self.bar.stop()
