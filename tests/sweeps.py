"""Running a spec on given cards, tasks and backends (a test's), the way a sweep does: the spec
resolved once (runs.plan.resolve), then executed."""

from __future__ import annotations

import asyncio

from slmscope.models import Backend, ModelCard
from slmscope.runs.executor import RunTotals, execute
from slmscope.runs.plan import resolve
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import SqlStore
from slmscope.tasks.record import Task


def execute_spec(
    spec: RunSpec,
    cards: dict[str, ModelCard],
    tasks: list[Task],
    store: SqlStore,
    *,
    backends: dict[str, Backend] | None = None,
) -> RunTotals:
    async def go() -> RunTotals:
        resolved = await resolve(spec, backends=backends, cards=cards, tasks=tasks)
        return await execute(resolved, store, backends=backends)

    return asyncio.run(go())
