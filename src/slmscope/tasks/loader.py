"""Task files: JSONL, one Task per line. Every bad row is reported with its file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmscope.tasks.record import TASK_TYPES, Task
from slmscope.tasks.scoring import DEFAULT_SCORER

REQUIRED = ("id", "task_type", "prompt", "gold")


class TaskFileError(ValueError):
    """A task file that cannot be read; the message names the file, the line and the field."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


def load_jsonl(path: Path, *, dataset: str | None = None) -> list[Task]:
    """Tasks from a JSONL file with fields id, task_type, prompt, gold (and optional others)."""
    name = dataset or path.stem
    tasks: list[Task] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TaskFileError(path, 0, f"cannot read the file ({err})") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskFileError(
                path, number, f"not valid JSON ({err.msg} at column {err.colno})"
            ) from err
        if not isinstance(row, dict):
            raise TaskFileError(path, number, f"expected a JSON object, got {type(row).__name__}")
        for key in REQUIRED:
            if row.get(key) in (None, ""):
                raise TaskFileError(path, number, f"missing field {key!r}")
        task_type = row["task_type"]
        if task_type not in TASK_TYPES:
            raise TaskFileError(
                path,
                number,
                f"field 'task_type': {task_type!r} is not one of {', '.join(TASK_TYPES)}",
            )
        choices = row.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise TaskFileError(path, number, "field 'choices': expected a list of strings")
        scorer = row.get("scorer") or DEFAULT_SCORER[task_type]
        sample_id = str(row["id"])
        if sample_id in seen:
            raise TaskFileError(path, number, f"field 'id': duplicate id {sample_id!r}")
        seen.add(sample_id)
        tasks.append(
            Task(
                id=sample_id,
                dataset=name,
                task_type=task_type,
                prompt=str(row["prompt"]),
                gold=str(row["gold"]),
                scorer=scorer,
                choices=tuple(choices),
                context=row.get("context"),
                rule=row.get("rule"),
            )
        )
    if not tasks:
        raise TaskFileError(path, 0, "no tasks in the file")
    return tasks
