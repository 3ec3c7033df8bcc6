"""What a sweep tells its caller on the way, as typed events (the command line renders them;
a notebook may log them or ignore them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmscope.runs.records import Result
from slmscope.tasks import BadRow


@dataclass(frozen=True)
class PullProgress:
    """Weights being fetched: `phase` is "start", then the puller's phases, each `advance`
    bytes further."""

    model: str
    phase: str
    advance: int
    total: int | None


@dataclass(frozen=True)
class BadRowsSkipped:
    """Input rows left out under skip_bad_rows (all of them are in the store's bad_rows)."""

    rows: tuple[BadRow, ...]
    out: Path


@dataclass(frozen=True)
class ToolLeftOut:
    """The agents run without this tool here; `why` says how to get it."""

    tool: str
    why: str


@dataclass(frozen=True)
class SettingIgnored:
    """A setting the user gave that this run has no use for; `why` says why."""

    setting: str
    why: str


@dataclass(frozen=True)
class RunsAbandoned:
    """Earlier runs on this store that a killed process left `running`, now `abandoned`."""

    count: int
    out: Path


@dataclass(frozen=True)
class StaleSamples:
    """Stored samples whose rows changed since (or predate row fingerprints): kept in the
    store, marked stale and left out of every table; their rows run again."""

    changed: int
    unmarked: int
    out: Path


@dataclass(frozen=True)
class RetryingFailed:
    """Cells that ended in a backend error or a timeout, dropped to run again."""

    count: int


@dataclass(frozen=True)
class SweepStarted:
    run_id: str
    out: Path
    planned: int
    skipped: int  # already stored: resumed


@dataclass(frozen=True)
class SampleDone:
    result: Result
    done: int  # samples of this run done so far
    todo: int  # samples this run had to do


@dataclass(frozen=True)
class SweepInterrupted:
    """Stopped (Ctrl-C, cancelled): `done` samples of this run are stored; the same call
    again resumes."""

    done: int
    out: Path


Event = (
    PullProgress
    | BadRowsSkipped
    | ToolLeftOut
    | RunsAbandoned
    | SettingIgnored
    | StaleSamples
    | RetryingFailed
    | SweepStarted
    | SampleDone
    | SweepInterrupted
)
