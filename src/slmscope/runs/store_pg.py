"""The PostgreSQL store (`--db postgresql://...`, extra `slmscope[postgres]`): the tables and
columns of the SQLite file, in a database a team shares. Cell keys are identities, so a cell
stored by anyone is not run again, and a cell two writers finish at once is kept once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slmscope.runs.store import Dialect, SqlStore, StoreError

POSTGRES = Dialect(
    param="%s", real="DOUBLE PRECISION", identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
)
SCHEMES = ("postgresql://", "postgres://")


def is_database_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(SCHEMES)


def redacted(url: str) -> str:
    """The URL without its password (in its user part or as a `password=` parameter), to
    name the store in messages and records."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else f"{key}={value}" if sep else key
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class PostgresStore(SqlStore):
    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.name = redacted(url)
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as err:
            raise StoreError(
                f"{self.name}: the PostgreSQL store needs psycopg: pip install 'slmscope[postgres]'"
            ) from err
        self._errors = psycopg.Error
        try:
            self._db = psycopg.connect(url, row_factory=dict_row, autocommit=True)
            self._setup()
        except psycopg.Error as err:
            raise StoreError(f"{self.name}: cannot use this database ({_first_line(err)})") from err

    @staticmethod
    def label(url: str) -> str:
        """A short name for reports: the database's name."""
        return urlsplit(url).path.strip("/") or "postgres"

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _in_transaction(self) -> Iterator[None]:
        try:
            with self._db.transaction():
                yield
        except self._errors as err:
            raise StoreError(f"{self.name}: {_first_line(err)}") from err

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._in_transaction()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._db.execute(sql, params).rowcount)

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self._db.execute(sql, params).fetchall())

    def _columns(self, table: str) -> set[str]:
        rows = self._read(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {r["column_name"] for r in rows}


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
