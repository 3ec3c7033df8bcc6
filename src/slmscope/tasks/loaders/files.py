"""Rows from local files (JSONL, JSON, CSV, Parquet), each with the line or row it came from."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmscope.tasks.errors import TaskFileError

FORMATS = ("jsonl", "json", "csv", "parquet")


@dataclass(frozen=True)
class Unreadable:
    """A row that could not be parsed (broken JSON, bytes that are not UTF-8, a CSV row of the
    wrong length): the loader skips it under --skip-bad-rows, else stops on it."""

    message: str


def file_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise TaskFileError(path, 0, f"unknown file type {path.suffix!r}; use one of {FORMATS}")


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, row) pairs. A JSON Lines or CSV row that cannot be parsed comes as
    `Unreadable` (its loader decides); a file that cannot be read at all raises."""
    if path.is_dir():
        raise TaskFileError(path, 0, "is a folder, not a task file")
    if not path.is_file():
        raise TaskFileError(path, 0, "file not found")
    kind = file_format(path)
    if kind == "jsonl":
        yield from _jsonl(path)
    elif kind == "json":
        yield from _json(path)
    elif kind == "csv":
        yield from _csv(path)
    else:
        yield from _parquet(path)


def _text(path: Path) -> str:
    """The file as text (UTF-8, a byte-order mark allowed); other bytes name their line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise TaskFileError(
            path, line, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {column})"
        ) from err


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for number, data in enumerate(raw.splitlines(), 1):
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as err:
            yield number, Unreadable(f"not UTF-8 text (byte 0x{data[err.start]:02x} at column "
                                     f"{err.start + 1})")  # fmt: skip
            continue
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            yield number, Unreadable(f"not valid JSON ({err.msg} at column {err.colno})")


def _json(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise TaskFileError(path, err.lineno, f"not valid JSON ({err.msg})") from err
    if isinstance(data, dict):  # {"data": [...]} or {"rows": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise TaskFileError(path, 1, "expected a JSON list of rows (or an object holding one)")
    yield from enumerate(data, 1)


def _csv(path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    header = reader.fieldnames or []
    if len(header) == 1 and ";" in header[0]:
        raise TaskFileError(
            path, 1, "the header is one column holding ';': slmscope reads comma-separated CSV"
        )
    for row in reader:
        if None in row:
            yield reader.line_num, Unreadable("more cells than header columns")
        elif None in row.values():
            yield reader.line_num, Unreadable("fewer cells than header columns")
        else:
            yield reader.line_num, row


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise TaskFileError(
            path, 0, "reading Parquet needs pyarrow: pip install 'slmscope[parquet]'"
        ) from err
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for a broken file
        raise TaskFileError(path, 0, f"not a readable Parquet file ({err})") from err
    yield from enumerate(table.to_pylist(), 1)
