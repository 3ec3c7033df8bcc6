"""Which store a run writes to and a reader reads from: a run directory's SQLite file, or a
PostgreSQL database named by its URL."""

from __future__ import annotations

from pathlib import Path

from slmscope.errors import ConfigError
from slmscope.runs.store import SqlStore, Store
from slmscope.runs.store_pg import PostgresStore, is_database_url

Source = Path | str  # a run directory, or postgresql://...


def open_store(out: Path, db: str | None = None) -> SqlStore:
    """The store a sweep writes to: `db` if given (the run directory then holds the report
    only), else the run directory's SQLite file."""
    if db is None:
        return Store(out, writer=True)
    if not is_database_url(db):
        raise ConfigError(f"--db {db!r}: expected a postgresql:// URL")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot be a run directory ({err.strerror})") from err
    return PostgresStore(db)


def open_existing(source: Source) -> SqlStore:
    """A store to read: a database URL, or a run directory that holds a results file."""
    if is_database_url(source):
        return PostgresStore(str(source))
    return Store.open(Path(source))


def label_of(source: Source) -> str:
    return (
        PostgresStore.label(str(source)) if is_database_url(source) else Path(source).resolve().name
    )
