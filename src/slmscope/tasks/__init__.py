"""Tasks: the Task record, loaders, the built-in suite and the scorers."""

from __future__ import annotations

import random
from pathlib import Path

from slmscope.tasks.builtin import SUITE
from slmscope.tasks.loader import TaskFileError, load_jsonl
from slmscope.tasks.record import Task

__all__ = ["SUITE", "Task", "TaskFileError", "UnknownTaskSet", "load_tasks", "sample"]


class UnknownTaskSet(LookupError):
    pass


def load_tasks(ref: str) -> list[Task]:
    """Tasks for `builtin` (the whole suite), a built-in name, or a JSONL task file."""
    if ref == "builtin":
        return [task for make in SUITE.values() for task in make()]
    if ref in SUITE:
        return SUITE[ref]()
    if f"builtin:{ref}" in SUITE:
        return SUITE[f"builtin:{ref}"]()
    path = Path(ref).expanduser()
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise TaskFileError(path, 0, "file not found")
        return load_jsonl(path)
    raise UnknownTaskSet(
        f"unknown task set {ref!r}: use 'builtin', one of {', '.join(SUITE)}, or a .jsonl file"
    )


def sample(tasks: list[Task], limit: int | None, seed: int = 0) -> list[Task]:
    """At most `limit` tasks per dataset, drawn with a fixed seed, in their original order."""
    if limit is None:
        return tasks
    by_dataset: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_dataset.setdefault(task.dataset, []).append(index)
    keep: set[int] = set()
    for indices in by_dataset.values():
        keep.update(
            indices if len(indices) <= limit else random.Random(seed).sample(indices, limit)
        )
    return [task for index, task in enumerate(tasks) if index in keep]
