"""Paradigms: how a model is put to work on a task (base, single agent, multi agent)."""

from __future__ import annotations

from typing import Protocol

from slmscope.models.base import Backend, GenerationConfig
from slmscope.paradigms.base import Base
from slmscope.paradigms.trace import Trace
from slmscope.tasks.record import Task


class Paradigm(Protocol):
    name: str

    async def solve(self, task: Task, backend: Backend, gen: GenerationConfig) -> Trace: ...


PARADIGMS: dict[str, type[Base]] = {"base": Base}


def get_paradigm(name: str) -> Paradigm:
    if name not in PARADIGMS:
        raise ValueError(f"unknown paradigm {name!r}; available: {', '.join(PARADIGMS)}")
    return PARADIGMS[name]()
