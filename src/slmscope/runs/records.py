"""The records a run writes: one `Result` per sample, one `StepRecord` per model call.

These two frozen records are the only definition of the `results` and `steps` tables: the
stores derive their table definitions, insert statements and migrations from the fields, and
`analysis.load` its DataFrame columns. A field's type says its SQL type (`str` TEXT, `int`
INTEGER, `float` REAL, `bool` INTEGER 0/1); `| None` makes it nullable; a default is the
column's default for rows written before the field existed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

SqlType = Literal["TEXT", "INTEGER", "REAL"]
_SQL: dict[type, SqlType] = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}


@dataclass(frozen=True)
class Result:
    """One sample of one cell: its score joined with the summed cost of its calls."""

    run_id: str
    cell_key: str
    model: str
    paradigm: str
    dataset: str
    task_type: str
    sample_id: str
    outcome: str
    score: float | None  # None: a served request, which has no reference to score against
    gold: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    total_tokens: int
    n_calls: int
    latency_s: float
    energy_method: str
    usage_source: str
    created_at: str
    harness: str = "strict"  # runs from before harnesses ran the study's protocol
    agent_outcome: str | None = None
    final_answer: str | None = None
    ttft_s: float | None = None
    energy_j: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None
    queue_s: float = 0.0  # the sample's calls waited this long for a free slot (not in latency_s)
    energy_shared: int = 1  # the most calls that shared a meter span with one of its calls
    cache_hits: int = 0  # calls replayed from the response cache (their original cost counts)
    content: str | None = None  # the row's fingerprint (Task.fingerprint); None: stored before
    stale: bool = False  # its row has changed or gone since (or it predates fingerprints)
    # Tool use (paradigms/acts.py); tools_offered 0: a paradigm without tools, or a row stored
    # before tool use was counted.
    tools_offered: int = 0
    tool_calls: int = 0  # calls that reached a tool, specialists' included, hand-offs not
    tool_errors: int = 0
    handoffs: int = 0
    tools_used: str | None = None  # JSON: calls per tool (and per specialist)
    acted: bool = False  # some call reached a real tool or specialist (copies do not count)
    observed: bool = False  # the answer (or last thought) holds a value a tool returned
    copies: int = 0  # copied example actions, action shapes, thoughts and answers
    # Turns the token budget reached (paradigms/acts.py): cut, cut inside an action, the same
    # cut action again, closed in time by the grammar.
    cut_turns: int = 0
    cut_actions: int = 0
    repeated_cuts: int = 0
    closed_turns: int = 0

    @classmethod
    def from_row(cls, row: typing.Mapping[str, Any]) -> Result:
        return cls(**_known(cls, row))


@dataclass(frozen=True)
class StepRecord:
    """One model call of a sample (or a failed attempt at one)."""

    run_id: str
    cell_key: str
    model: str
    paradigm: str
    dataset: str
    sample_id: str
    agent: str
    turn: int
    messages: str  # the prompt as sent, JSON
    output: str
    harness: str = "strict"
    repair: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    decode_tps: float | None = None
    tool: str | None = None
    tool_input: str | None = None
    observation: str | None = None
    error: str | None = None
    usage_source: str | None = None
    energy_j: float | None = None
    energy_method: str | None = None
    queue_s: float | None = None
    cache_hit: bool = False
    handoff: bool = False  # its action handed the task to a specialist
    copied: bool = False  # its action copies the shape of the prompt's example
    cut: str | None = None  # how the token budget ended the turn (paradigms/harness.budget_end)

    @classmethod
    def from_row(cls, row: typing.Mapping[str, Any]) -> StepRecord:
        return cls(**_known(cls, row))


Record = Result | StepRecord


@dataclass(frozen=True)
class Column:
    name: str
    sql: SqlType
    nullable: bool
    default: Any  # dataclasses.MISSING when the column has none

    def definition(self, real: str = "REAL", *, added: bool = False) -> str:
        """The column in CREATE TABLE, or (`added`) in ALTER TABLE ADD COLUMN, where a column
        without a default cannot be NOT NULL; `real` is the dialect's float type."""
        kind = real if self.sql == "REAL" else self.sql
        text = f"{self.name} {kind}"
        has_default = self.default is not dataclasses.MISSING and self.default is not None
        if not self.nullable and (has_default or not added):
            text += " NOT NULL"
        if has_default:
            text += f" DEFAULT {sql_literal(self.default)}"
        return text


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def columns(cls: type[Result] | type[StepRecord]) -> tuple[Column, ...]:
    return _COLUMNS[cls]


def _columns(cls: type[Result] | type[StepRecord]) -> tuple[Column, ...]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        args = typing.get_args(kind) if isinstance(kind, types.UnionType) else ()
        base = next(a for a in args if a is not type(None)) if args else kind
        found.append(Column(f.name, _SQL[base], type(None) in args, f.default))
    return tuple(found)


def column_names(cls: type[Result] | type[StepRecord]) -> tuple[str, ...]:
    return tuple(c.name for c in columns(cls))


def values(record: Record) -> list[Any]:
    """The record's values in column order, as the stores write them (bools as 0/1)."""
    return [
        int(v) if isinstance(v, bool) else v
        for v in (getattr(record, name) for name in column_names(type(record)))
    ]


def _known(cls: type[Result] | type[StepRecord], row: typing.Mapping[str, Any]) -> dict[str, Any]:
    """A stored row's fields (a store's own `id`, and columns of newer versions, left out;
    0/1 back to bools)."""
    bools = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, bool)}
    found: dict[str, Any] = {}
    for name in column_names(cls):
        if name not in row:
            continue
        value = row[name]
        if name in bools:
            if value is None:
                continue
            value = bool(value)
        found[name] = value
    return found


_COLUMNS = {cls: _columns(cls) for cls in (Result, StepRecord)}
RESULT_COLUMNS = column_names(Result)
STEP_COLUMNS = column_names(StepRecord)
