"""What a sweep would run, and what it would cost, before running it (`slmscope sweep --plan`).

The cost of a cell is estimated from samples already stored in the run directory: the mean
over the same model, paradigm, harness and dataset, else over the same model, paradigm and
harness, else over the same model and paradigm; otherwise it is unknown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slmscope.runs.plan import Cell
from slmscope.runs.records import Result
from slmscope.runs.store import DB_NAME
from slmscope.runs.store_pg import is_database_url
from slmscope.runs.stores import Source, open_existing

Group = tuple[str, str, str, str]  # model, paradigm, harness, dataset


@dataclass(frozen=True)
class PlanRow:
    model: str
    paradigm: str
    harness: str
    dataset: str
    cells: int
    todo: int  # not yet stored
    tokens: float | None  # estimated for the cells to do
    seconds: float | None
    basis: str  # what the estimate comes from


def _means(
    results: Sequence[Result], depth: int
) -> dict[tuple[str, ...], tuple[float, float, int]]:
    """Mean tokens and latency per sample, grouped by the first `depth` parts of the group."""
    sums: dict[tuple[str, ...], list[float]] = {}
    for r in results:
        key = (r.model, r.paradigm, r.harness, r.dataset)[:depth]
        acc = sums.setdefault(key, [0.0, 0.0, 0])
        acc[0] += r.total_tokens
        acc[1] += r.latency_s
        acc[2] += 1
    return {k: (t / n, s / n, int(n)) for k, (t, s, n) in sums.items()}


def estimate(cells: Sequence[Cell], source: Source) -> list[PlanRow]:
    """The cells per model, paradigm, harness and dataset; how many are still to do, and their
    estimated cost (`source`: the run directory or database the sweep would write to)."""
    results: list[Result] = []
    if is_database_url(source) or (Path(source) / DB_NAME).is_file():
        store = open_existing(source)
        try:
            results = store.results()
        finally:
            store.close()
    done = {r.cell_key for r in results}
    levels = [(depth, _means(results, depth)) for depth in (4, 3, 2)]
    names = {4: "same dataset", 3: "other datasets", 2: "other harnesses"}
    total: Counter[Group] = Counter()
    todo: Counter[Group] = Counter()
    for cell in cells:
        group = (cell.model, cell.paradigm, cell.harness, cell.task.dataset)
        total[group] += 1
        todo[group] += cell.key not in done
    rows = []
    for group, count in total.items():
        found = next(((d, m[group[:d]]) for d, m in levels if group[:d] in m), None)
        if found is None:
            rows.append(PlanRow(*group, count, todo[group], None, None, "no earlier samples"))
            continue
        depth, (tokens, seconds, n) = found
        rows.append(
            PlanRow(
                *group,
                count,
                todo[group],
                tokens * todo[group],
                seconds * todo[group],
                f"{n} samples, {names[depth]}",
            )
        )
    return rows
