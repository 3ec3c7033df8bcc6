"""slmscope's own task files: one Task per row, in any format `read_rows` reads.

Fields: id, task_type, prompt, gold; optional choices, context, scorer, rule.
"""

from __future__ import annotations

from pathlib import Path

from slmscope.tasks.errors import TaskFileError
from slmscope.tasks.loaders.files import read_rows
from slmscope.tasks.record import TASK_TYPES, Task
from slmscope.tasks.scoring import DEFAULT_SCORER, SCORERS

REQUIRED = ("id", "task_type", "prompt", "gold")


def load_native(path: Path, *, dataset: str | None = None) -> list[Task]:
    name = dataset or path.stem
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, row in read_rows(path):
        if not isinstance(row, dict):
            raise TaskFileError(path, number, f"expected an object, got {type(row).__name__}")
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
        if isinstance(choices, str):  # CSV cells: "a|b|c"
            choices = [c.strip() for c in choices.split("|") if c.strip()]
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise TaskFileError(path, number, "field 'choices': expected a list of strings")
        scorer = row.get("scorer") or DEFAULT_SCORER[task_type]
        if scorer not in SCORERS:
            raise TaskFileError(
                path, number, f"field 'scorer': {scorer!r} is not one of {sorted(SCORERS)}"
            )
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
                context=row.get("context") or None,
                rule=row.get("rule") or None,
            )
        )
    if not tasks:
        raise TaskFileError(path, 0, "no tasks in the file")
    return tasks
