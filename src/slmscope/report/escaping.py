"""Output of models and tools is data: made safe for each reader that shows it.

- The terminal: Rich markup escaped (so `[/]` prints, and `[link=...]` makes no link), and
  control characters (escape sequences, BEL, NUL, bidi overrides) shown as visible escapes.
- A spreadsheet: a CSV cell that begins with `=`, `+`, `-`, `@` (or a tab or carriage return)
  would be run as a formula, so it is written with a leading `'`.
- The HTML report escapes through its template engine's autoescape.
"""

from __future__ import annotations

import re

import pandas as pd
from rich.markup import escape

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides/isolates
# that can make text read other than it is stored.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def visible(text: str) -> str:
    """Control characters as escapes: '\\x1b[2J' is shown, not obeyed."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def terminal_text(text: object) -> str:
    """Any value as terminal text for Rich: control characters visible, markup escaped."""
    return escape(visible(str(text)))


def spreadsheet_cell(value: object) -> object:
    """A cell a spreadsheet will show, never run: text that starts like a formula is quoted."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text columns hold no cell a spreadsheet would run."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(spreadsheet_cell)
    return out
