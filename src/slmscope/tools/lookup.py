"""The lookup tool: search the task's own context or table, so long contexts need not be pasted
whole into every turn. Tables (Markdown or CSV) are read as rows and columns by name."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from slmscope.tools.base import ToolError


def parse_table(text: str) -> list[list[str]]:
    """Rows of the first Markdown or CSV table in the text (header first); [] if none."""
    lines = [ln.strip() for ln in text.splitlines()]
    md = [ln for ln in lines if ln.startswith("|") and ln.endswith("|")]
    if len(md) >= 2:
        # One pipe off each end: `||2014|2013|` keeps its empty corner cell, so the columns align.
        rows = [[c.strip() for c in ln[1:-1].split("|")] for ln in md]
        return [r for r in rows if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
    return _csv_block(lines)


MAX_CSV_CELL = 40  # longer "cells" are prose: a sentence with commas is not a table


def _csv_block(lines: list[str]) -> list[list[str]]:
    """The first run of consecutive lines that read as CSV rows (two cells or more, none of
    them a sentence) where two rows have one width: from the first of them, the rows of that
    width (one of another width, an unquoted `1,784`, is left out). [] if none."""
    block: list[list[str]] = []
    for line in [*lines, ""]:
        row = [c.strip() for c in next(csv.reader([line]), [])] if "," in line else []
        if len(row) >= 2 and all(len(c) <= MAX_CSV_CELL for c in row):
            block.append(row)
            continue
        widths = [len(r) for r in block]
        header = next((n for n, w in enumerate(widths) if widths.count(w) >= 2), None)
        if header is not None:  # the first row that another row matches in width
            return [r for r in block[header:] if len(r) == widths[header]]
        block = []
    return []


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


class Lookup:
    """Bound to one task's context: {"row", "column"} reads a cell, {"query"} finds lines."""

    name = "lookup"
    description = (
        "Look things up in this task's own context. Give row and column names to read one "
        "table cell (e.g. row 'Revenue', column '2023'), or a query to get the matching lines."
    )
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "row": {"type": "string"},
            "column": {"type": "string"},
            "query": {"type": "string"},
        },
        "anyOf": [{"required": ["row", "column"]}, {"required": ["query"]}],
        "additionalProperties": False,
    }

    def __init__(self, context: str) -> None:
        self.context = context
        self.table = parse_table(context)

    def cell(self, row: str, column: str) -> str:
        if not self.table:
            raise ToolError("this task's context has no table; use a query instead")
        header = [_norm(h) for h in self.table[0]]
        if _norm(column) not in header:
            raise ToolError(f"no column {column!r}; columns: {', '.join(self.table[0])}")
        col = header.index(_norm(column))
        matches = [r for r in self.table[1:] if r and _norm(r[0]) == _norm(row)]
        if not matches:
            names = ", ".join(r[0] for r in self.table[1:] if r)
            raise ToolError(f"no row {row!r}; rows: {names}")
        return matches[0][col]

    def lines(self, query: str, limit: int = 5) -> list[str]:
        words = set(_norm(query).split())
        scored: list[tuple[int, int, str]] = []
        for line in self.context.splitlines():
            overlap = len(words & set(_norm(line).split()))
            if overlap:
                scored.append((-overlap, len(scored), line.strip()))
        return [line for _, _, line in sorted(scored)[:limit]]

    async def run(self, args: Mapping[str, Any]) -> str:
        row, column, query = args.get("row"), args.get("column"), args.get("query")
        if isinstance(row, str) and isinstance(column, str):
            return self.cell(row, column)
        if isinstance(query, str) and query.strip():
            found = self.lines(query)
            return "\n".join(found) if found else f"nothing in the context matches {query!r}"
        raise ToolError("lookup needs either 'row' and 'column', or 'query'")
