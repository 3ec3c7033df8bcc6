"""Deterministic sampling: the same seed gives the same samples, whatever the run."""

from __future__ import annotations

import random

from slmscope.tasks.labels import match_label
from slmscope.tasks.record import Task


def stratified_sample(tasks: list[Task], limit: int | None, seed: int) -> list[Task]:
    """At most `limit` tasks per dataset, label shares kept, seeded, in their original order.
    Tasks without choices are sampled uniformly.

    Samples are nested: a larger limit keeps every task a smaller one chose (seats go to the
    label furthest below its share one at a time, and each label's tasks are drawn from one
    seeded shuffle), so raising --limit on a run directory only adds samples."""
    if limit is None:
        return tasks
    keep: set[int] = set()
    by_dataset: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_dataset.setdefault(task.dataset, []).append(index)
    for indices in by_dataset.values():
        if len(indices) <= limit:
            keep.update(indices)
            continue
        strata: dict[str, list[int]] = {}
        for i in indices:
            label = match_label(tasks[i].gold, tasks[i].choices) if tasks[i].choices else ""
            strata.setdefault(label or "", []).append(i)
        for label, members in strata.items():
            random.Random(f"{seed}|{label}").shuffle(members)
        counts = dict.fromkeys(strata, 0)
        for seat in range(1, limit + 1):
            label = max(
                (k for k in strata if counts[k] < len(strata[k])),
                key=lambda k: (seat * len(strata[k]) / len(indices) - counts[k], k),
            )
            counts[label] += 1
        for label, members in strata.items():
            keep.update(members[: counts[label]])
    return [task for index, task in enumerate(tasks) if index in keep]
