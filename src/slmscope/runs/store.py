"""The results store: one SQLite file per run directory (`RUN_DIR/results.sqlite`, WAL mode).

Tables and columns are part of the interface (users open the file with any SQLite tool); they
are documented in the README. The `results` and `steps` tables are derived from the records in
records.py. A sample's result row and its step rows are written in one transaction as soon as
the sample finishes, so an interrupted sweep loses nothing done.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmscope.errors import UserError
from slmscope.runs.records import (
    RESULT_COLUMNS,
    STEP_COLUMNS,
    Result,
    StepRecord,
    columns,
    values,
)

DB_NAME = "results.sqlite"


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases a store can use."""

    param: str  # the driver's placeholder
    real: str  # the float type
    identity: str  # an auto-numbered primary key


SQLITE = Dialect(param="?", real="REAL", identity="INTEGER PRIMARY KEY")


def schema(d: Dialect) -> dict[str, list[str]]:
    """The CREATE statements of each table (the records' tables from their fields)."""
    results = ",\n    ".join(c.definition(d.real) for c in columns(Result))
    steps = ",\n    ".join(c.definition(d.real) for c in columns(StepRecord))
    return {
        "runs": [
            """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    versions TEXT NOT NULL,
    machine TEXT NOT NULL,
    models TEXT NOT NULL
)"""
        ],
        "results": [
            f"CREATE TABLE IF NOT EXISTS results (\n    id {d.identity},\n    {results},\n"
            "    UNIQUE (cell_key)\n)",
            "CREATE INDEX IF NOT EXISTS results_by_cell ON results(model, paradigm, dataset)",
        ],
        "steps": [
            f"CREATE TABLE IF NOT EXISTS steps (\n    id {d.identity},\n    {steps}\n)",
            "CREATE INDEX IF NOT EXISTS steps_by_cell ON steps(cell_key)",
        ],
        "bad_rows": [
            f"""CREATE TABLE IF NOT EXISTS bad_rows (
    id {d.identity},
    run_id TEXT NOT NULL,
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    field TEXT NOT NULL,
    message TEXT NOT NULL
)"""
        ],
    }


def migrations(have: Mapping[str, set[str]], d: Dialect) -> list[str]:
    """ALTER statements for the columns an older results file lacks (older runs stay readable):
    each added with its default, then the values that default cannot say."""
    found = []
    for table, record in (("results", Result), ("steps", StepRecord)):
        if table not in have:  # created just now, with every column
            continue
        for column in columns(record):
            if column.name not in have[table]:
                found.append(
                    f"ALTER TABLE {table} ADD COLUMN {column.definition(d.real, added=True)}"
                )
                if column.name == "harness":  # the base paradigm ran under no harness
                    found.append(f"UPDATE {table} SET harness = 'none' WHERE paradigm = 'base'")
    return found


class StoreError(UserError, RuntimeError):
    """A results store that cannot be opened or written; the message names it."""


class StoreLost(StoreError):
    """The results file went away (deleted, replaced) while a run was writing it."""


class SqlStore:
    """What every results store does, over any SQL database; subclasses connect and say how
    statements run (`_execute`, `_many`, `_read`, `_transaction`, `_columns`)."""

    dialect: Dialect
    name: str  # names the store in errors and reports: a file, or a database URL without secrets

    def _setup(self) -> None:
        """Create what is missing, add the columns an older store lacks; a store that is up
        to date gets no DDL at all (a reader may lack the right to create)."""
        have = {table: self._columns(table) for table in schema(self.dialect)}
        statements = [
            statement
            for table, creates in schema(self.dialect).items()
            if not have[table]
            for statement in creates
        ]
        statements += migrations({t: c for t, c in have.items() if c}, self.dialect)
        if statements:
            with self._transaction():
                for statement in statements:
                    self._execute(statement)

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (in the current transaction, if any); the rows it changed."""
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._transaction():
            self._execute(sql, params)

    # --- the interface every store has --------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        started_at: str,
        *,
        spec: Mapping[str, Any],
        versions: Mapping[str, Any],
        machine: Mapping[str, Any],
        models: Mapping[str, Any],
    ) -> None:
        self._write(
            _insert(
                "runs",
                ("run_id", "started_at", "status", "spec", "versions", "machine", "models"),
                self.dialect,
            ),
            (
                run_id,
                started_at,
                "running",
                json.dumps(spec),
                json.dumps(versions),
                json.dumps(machine),
                json.dumps(models),
            ),
        )

    def update_run_models(self, run_id: str, models: Mapping[str, Any]) -> None:
        p = self.dialect.param
        self._write(
            f"UPDATE runs SET models = {p} WHERE run_id = {p}", (json.dumps(models), run_id)
        )

    def finish_run(self, run_id: str, finished_at: str, status: str) -> None:
        p = self.dialect.param
        self._write(
            f"UPDATE runs SET finished_at = {p}, status = {p} WHERE run_id = {p}",
            (finished_at, status, run_id),
        )

    def abandon_runs(self, finished_at: str) -> int:
        """Mark the runs a killed process left `running` as `abandoned`; how many there were.
        Only runs of this host whose process is gone: on a shared database, a colleague's
        live run (another host, or a live process here) is left alone."""
        stale = [
            row["run_id"]
            for row in self._read("SELECT run_id, machine FROM runs WHERE status = 'running'")
            if _dead_here(row["machine"])
        ]
        for run_id in stale:
            self.finish_run(run_id, finished_at, "abandoned")
        return len(stale)

    def write_bad_rows(self, run_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Input rows left out under --skip-bad-rows: where they were and what was wrong."""
        sql = _insert("bad_rows", ("run_id", "source", "line", "field", "message"), self.dialect)
        with self._transaction():
            self._many(
                sql, [(run_id, r["source"], r["line"], r["field"], r["message"]) for r in rows]
            )

    def write_sample(self, result: Result, steps: Sequence[StepRecord]) -> bool:
        """The sample's result and steps, in one transaction. False if the cell was stored
        meanwhile by another writer (a shared database): theirs stands, nothing is added."""
        insert = _insert("results", RESULT_COLUMNS, self.dialect)
        with self._transaction():
            if not self._execute(insert + " ON CONFLICT (cell_key) DO NOTHING", values(result)):
                return False
            self._many(_insert("steps", STEP_COLUMNS, self.dialect), [values(s) for s in steps])
        return True

    def forget(self, cell_keys: Iterable[str]) -> None:
        """Drop these cells' results and steps (to run them again), in one transaction."""
        p = self.dialect.param
        with self._transaction():
            for key in cell_keys:
                self._execute(f"DELETE FROM steps WHERE cell_key = {p}", (key,))
                self._execute(f"DELETE FROM results WHERE cell_key = {p}", (key,))

    def mark_stale(self, cell_keys: Iterable[str]) -> None:
        """Keep these samples, but out of every table: their rows changed or went away."""
        p = self.dialect.param
        with self._transaction():
            for key in cell_keys:
                self._execute(f"UPDATE results SET stale = {p} WHERE cell_key = {p}", (1, key))

    def bad_rows(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM bad_rows ORDER BY id")

    def done_keys(self) -> set[str]:
        return {r["cell_key"] for r in self._read("SELECT cell_key FROM results")}

    def runs(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM runs ORDER BY started_at")

    def results(self) -> list[Result]:
        return [Result.from_row(r) for r in self._read("SELECT * FROM results ORDER BY id")]

    def steps(self, cell_key: str | None = None) -> list[StepRecord]:
        if cell_key is None:
            rows = self._read("SELECT * FROM steps ORDER BY id")
        else:
            p = self.dialect.param
            rows = self._read(f"SELECT * FROM steps WHERE cell_key = {p} ORDER BY id", (cell_key,))
        return [StepRecord.from_row(r) for r in rows]


class Store(SqlStore):
    """A run directory's SQLite results file (the default store)."""

    dialect = SQLITE

    def __init__(self, run_dir: Path, *, writer: bool = False) -> None:
        """`writer`: this process runs samples into the directory, and no other may at once
        (a second one is refused in one line)."""
        self.path = run_dir / DB_NAME
        self.name = str(self.path)
        self._lock: int | None = None
        self._inode: int | None = None  # the file written to; checked before each write
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{run_dir}: cannot be a run directory ({err.strerror})") from err
        if writer:
            self._lock = _claim(run_dir)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._setup()
            self._inode = self.path.stat().st_ino
        except (sqlite3.DatabaseError, OSError) as err:
            self.close()
            raise StoreError(f"{self.path}: cannot use this results file ({err})") from err

    @classmethod
    def open(cls, run_dir: Path) -> Store:
        """An existing run directory's store (for reading); refuses a folder without one."""
        if not (run_dir / DB_NAME).is_file():
            raise StoreError(f"{run_dir} holds no {DB_NAME}: is it a slmscope run directory?")
        return cls(run_dir)

    def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
        if self._lock is not None:
            os.close(self._lock)  # the lock goes with it
            self._lock = None

    def _transaction(self) -> AbstractContextManager[Any]:
        try:
            lost = self._inode is not None and self.path.stat().st_ino != self._inode
        except FileNotFoundError:
            lost = True
        if lost:
            raise StoreLost(
                f"{self.path} was deleted or replaced while this run wrote to it: the samples "
                "stored in it went with it; stopped here"
            )
        return self._committed()

    @contextlib.contextmanager
    def _committed(self) -> Iterator[sqlite3.Connection]:
        """The connection's transaction; a commit that fails (a full disk) is a StoreError."""
        try:
            with self._db:
                yield self._db
        except sqlite3.OperationalError as err:
            raise self._write_error(err) from err

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._db.execute(sql, params).rowcount
        except sqlite3.OperationalError as err:
            raise self._write_error(err) from err

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.OperationalError as err:
            raise self._write_error(err) from err

    def _write_error(self, err: sqlite3.OperationalError) -> StoreError:
        full = "full" in str(err)
        hint = "; free some space, then run the same command again" if full else ""
        return StoreError(f"{self.path}: cannot write ({err}){hint}")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(sql, params)]

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}


def _claim(run_dir: Path) -> int:
    """Hold the run directory's writer lock (released when the process ends, however)."""
    import fcntl

    path = run_dir / ".writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreError(
            f"{run_dir} is being written by another slmscope process (pid {holder}); wait for "
            "it to finish, or give this run another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _dead_here(machine: str) -> bool:
    """Whether a run recorded with this machine record ran here in a process now gone (runs
    recorded before host and pid were kept count as gone)."""
    try:
        record = json.loads(machine)
    except ValueError:
        return True
    host, pid = record.get("host"), record.get("pid")
    if host is None or pid is None:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return int(pid) == os.getpid()  # this very process starts afresh: its old run is over


def _insert(table: str, names: Sequence[str], d: Dialect) -> str:
    marks = ", ".join([d.param] * len(names))
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"
