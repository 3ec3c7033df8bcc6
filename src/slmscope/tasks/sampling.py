"""Deterministic sampling: the same seed gives the same samples, whatever the run."""

from __future__ import annotations

import random

from slmscope.tasks.record import Task
from slmscope.tasks.scoring import match_label


def stratified_sample(tasks: list[Task], limit: int | None, seed: int) -> list[Task]:
    """At most `limit` tasks per dataset, label shares kept (largest remainder), seeded, in
    their original order. Tasks without choices are sampled uniformly."""
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
        rng = random.Random(seed)
        strata: dict[str, list[int]] = {}
        for i in indices:
            label = match_label(tasks[i].gold, tasks[i].choices) if tasks[i].choices else ""
            strata.setdefault(label or "", []).append(i)
        quotas = {k: limit * len(v) / len(indices) for k, v in strata.items()}
        counts = {k: int(q) for k, q in quotas.items()}
        for k in sorted(quotas, key=lambda k: (counts[k] - quotas[k], k))[
            : limit - sum(counts.values())
        ]:
            counts[k] += 1
        for label in sorted(strata):
            keep.update(rng.sample(strata[label], counts[label]))
    return [task for index, task in enumerate(tasks) if index in keep]
