"""A concurrent sweep in its own process, for the kill -9 tests: `python sweep_child.py OUT`.
Its scripted server answers each sample deterministically from the sample's own text (one
tool call, then an answer), after a short delay, whatever order the samples run in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ScriptedBackend
from slmscope.models.base import Abilities, Completion, GenerationConfig, Message
from slmscope.runs import RunSpec, sweep

MODEL = "served-model"
SPEC = RunSpec(
    models=(MODEL,),
    paradigms=("base", "single"),
    tasks=("builtin:sentiment", "builtin:headlines"),
    limit=6,
    base_url="http://127.0.0.1:9/v1",
    concurrency=4,
    harnesses=("repair",),  # a stand-in server: it answers no grammar probe
)
LABELS = ("positive", "negative", "neutral")


class Server(ScriptedBackend):
    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        await asyncio.sleep(0.05)
        digest = int(hashlib.sha256(messages[1]["content"].encode()).hexdigest(), 16)
        label = LABELS[digest % 3]
        turn = sum(m["role"] == "assistant" for m in messages)
        if "<observation>" not in gen.stop:  # the base model
            reply = label
        elif turn == 0:  # an agent: one tool call, then the answer
            call = {"tool": "calculator", "input": {"expression": f"{digest % 97} + 1"}}
            reply = f"<think>count</think><action>{json.dumps(call)}</action>"
        else:
            reply = f"<think>done</think><final_answer>{label}</final_answer>"
        self.replies = [reply]
        return await super().chat(messages, gen)


if __name__ == "__main__":
    server = Server([], name=MODEL, abilities=Abilities(parallel_slots=True))
    sweep(SPEC, Path(sys.argv[1]), backends={MODEL: server})
