"""Scripted agent replies for the control-flow tests (test_agents.py, test_agent_harnesses.py)."""

from __future__ import annotations

import asyncio
import json

from conftest import ScriptedBackend
from slmscope.models.base import GenerationConfig
from slmscope.paradigms.trace import Trace
from slmscope.tasks.builtin import SUITE

QA = SUITE["builtin:table_qa"]()[0]  # a numeric question over a table
SENT = SUITE["builtin:sentiment"]()[0]  # gold: positive


def act(tool: str, **args: object) -> str:
    return f"<think>step</think><action>{json.dumps({'tool': tool, 'input': args})}</action>"


def answer(text: str) -> str:
    return f"<think>done</think><final_answer>{text}</final_answer>"


def run(paradigm: object, task: object, *replies: object) -> tuple[Trace, ScriptedBackend]:
    backend = ScriptedBackend(list(replies))  # type: ignore[arg-type]
    trace = asyncio.run(paradigm.solve(task.problem, backend, GenerationConfig()))  # type: ignore[attr-defined]
    return trace, backend
