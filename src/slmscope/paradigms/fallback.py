"""Fallback: an agent's failed sample (any outcome but ok) is answered by the base paradigm.

The reference study recommended this without testing it. The Trace keeps both attempts'
steps, so the cost of both is counted, and the agent's own outcome in `agent_outcome`. In a
sweep that runs the agent and base on the same problem, their traces are `given`: nothing is
asked of the model again.
"""

from __future__ import annotations

import dataclasses

from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.base import Base, Given, OnStep, Paradigm
from slmscope.paradigms.harness import Harness
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Problem


class Fallback:
    def __init__(self, agent: Paradigm) -> None:
        self.agent, self.base = agent, Base()
        self.name = f"{agent.name}+fallback"
        self.harness: Harness | None = agent.harness
        self.uses_tools = agent.uses_tools
        self.parts: tuple[str, ...] = (agent.name, self.base.name)

    async def solve(
        self,
        problem: Problem,
        backend: Backend,
        gen: GenerationConfig,
        *,
        on_step: OnStep | None = None,
        given: Given | None = None,
    ) -> Trace:
        first = await given(self.agent.name) if given else None
        if first is None:
            first = await self.agent.solve(problem, backend, gen, on_step=on_step)
        if first.outcome == "ok":
            return dataclasses.replace(first, agent_outcome="ok")
        second = await given(self.base.name) if given else None
        if second is None:
            second = await self.base.solve(problem, backend, gen, on_step=on_step)
        return Trace(
            first.steps + second.steps,
            second.final_answer,
            second.outcome,
            second.error or f"agent ended {first.outcome}: {first.error}",
            agent_outcome=first.outcome,
            tools=first.tools,
        )
