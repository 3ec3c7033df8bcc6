"""slmscope's own task files: one Task per row, in any format `read_rows` reads.

Fields: id, task_type, prompt, gold; optional choices, context, scorer, rule, and answer (the
answers' format, tasks/answer_format.py; by default the task type's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from slmscope.tasks.answer_format import format_named
from slmscope.tasks.errors import TaskFileError
from slmscope.tasks.loaders.dataset import BadRow, Loaded
from slmscope.tasks.loaders.files import Unreadable, file_format, read_rows
from slmscope.tasks.record import TASK_TYPES, Task, TaskType
from slmscope.tasks.scoring import DEFAULT_SCORER, SCORERS

REQUIRED = ("id", "task_type", "prompt", "gold")


def load_native(path: Path, *, dataset: str | None = None, skip_bad_rows: bool = False) -> Loaded:
    """The file's tasks. A row that cannot be used stops the load naming its line and field,
    or, under `skip_bad_rows`, is left out and listed."""
    name = dataset or path.stem
    csv_cells = file_format(path) == "csv"  # only a CSV cell may list choices as "a|b|c"
    tasks: list[Task] = []
    bad: list[BadRow] = []
    seen: set[str] = set()
    for number, row in read_rows(path):
        try:
            task = _task(row, name, csv_cells)
            if task.id in seen:
                raise _Problem("id", f"duplicate id {task.id!r}")
        except _Problem as problem:
            if skip_bad_rows:
                bad.append(BadRow(str(path), number, problem.field, str(problem)))
                continue
            said = f"field {problem.field!r}: " if problem.field != "(row)" else ""
            raise TaskFileError(path, number, f"{said}{problem}") from None
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskFileError(path, 0, "no tasks in the file" + (" left" if bad else ""))
    return Loaded(tasks, bad, str(path))


class _Problem(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _text_field(row: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = row.get(key)
    if value in (None, ""):
        if required:
            raise _Problem("(row)", f"missing field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Problem(key, f"expected text, got {type(value).__name__}")
    if key == "prompt" and not isinstance(value, str):
        raise _Problem(key, f"expected text, got {type(value).__name__} {value!r}")
    return str(value)


def _task(row: Any, name: str, csv_cells: bool) -> Task:
    if isinstance(row, Unreadable):
        raise _Problem("(row)", row.message)
    if not isinstance(row, dict):
        raise _Problem("(row)", f"expected an object, got {type(row).__name__}")
    sample_id, task_type, prompt, gold = (_text_field(row, key) for key in REQUIRED)
    assert sample_id is not None and prompt is not None and gold is not None
    if task_type not in TASK_TYPES:
        raise _Problem("task_type", f"{task_type!r} is not one of {', '.join(TASK_TYPES)}")
    choices = row.get("choices") or []
    if isinstance(choices, str) and csv_cells:  # CSV cells: "a|b|c"
        choices = [c.strip() for c in choices.split("|") if c.strip()]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise _Problem("choices", f"expected a list of strings, got {choices!r:.60}")
    if choices and gold not in choices:
        raise _Problem("gold", f"{gold!r} is not one of the choices {choices}")
    scorer = row.get("scorer") or DEFAULT_SCORER[task_type]
    if scorer not in SCORERS:
        raise _Problem("scorer", f"{scorer!r} is not one of {sorted(SCORERS)}")
    try:
        answer = format_named(row.get("answer"), task_type, tuple(choices), str(scorer))
    except ValueError as err:
        raise _Problem("answer", str(err)) from None
    return Task(
        answer=answer,
        id=sample_id,
        dataset=name,
        task_type=cast(TaskType, task_type),
        prompt=prompt,
        gold=gold,
        scorer=scorer,
        choices=tuple(choices),
        context=_text_field(row, "context", required=False),
        rule=_text_field(row, "rule", required=False),
    )
