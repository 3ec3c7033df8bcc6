"""Fallback: an agent's failed sample (any outcome but ok) is answered by the base paradigm.

The reference study recommended this without testing it. The Trace keeps both attempts'
steps, so the cost of both is counted, and the agent's own outcome in `agent_outcome`.
"""

from __future__ import annotations

from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.base import Base, Paradigm
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Task


class Fallback:
    def __init__(self, agent: Paradigm) -> None:
        self.agent = agent
        self.name = f"{agent.name}+fallback"
        self.base = Base()

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace:
        return await self.finish(await self.agent.solve(task, backend, gen), task, backend, gen)

    async def finish(
        self,
        first: Trace,
        task: Task,
        backend: Backend,
        gen: GenerationConfig,
        base: Trace | None = None,
    ) -> Trace:
        """The fallback given the agent's own trace (and the base paradigm's, when a sweep ran
        it already on this sample: then nothing is asked of the model again)."""
        if first.outcome == "ok":
            return Trace(first.steps, first.final_answer, "ok", None, agent_outcome="ok")
        second = base or await self.base.solve(task, backend, gen)
        return Trace(
            first.steps + second.steps,
            second.final_answer,
            second.outcome,
            second.error or f"agent ended {first.outcome}: {first.error}",
            agent_outcome=first.outcome,
        )
