"""The one error type for unusable task data."""

from __future__ import annotations

from pathlib import Path

from slmscope.errors import UserError


class TaskFileError(UserError, ValueError):
    """Task data that cannot be used; the message names the file (or hub set), line and field."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line
