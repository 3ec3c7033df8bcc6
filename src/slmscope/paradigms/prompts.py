"""Prompt text shared by the paradigms."""

from __future__ import annotations

from slmscope.models.base import Message
from slmscope.tasks.record import Problem

# Part of every sample's cell key: change it whenever a paradigm's prompts change, so that
# resuming a run never mixes samples made with different prompts. (2026-12-02: every paradigm
# is shown the same problem, its dataset's answer-format line included. .3: the agents' worked
# example shows no direct answer and computes with plain arithmetic. 2026-12-03: the
# supervisor's example hands the computation to the specialist that can compute, with a
# request that holds no numbers. .3: the python tool says only the standard library is there,
# no pandas or numpy, and asks for a few lines. .4: what the tools return is what the model
# reads too: `lookup` no longer takes a sentence with commas for a CSV table.)
PROMPT_VERSION = "2026-12-03.4"

BASE_SYSTEM = (
    "You are a careful financial analyst. Answer the user's task. "
    "Write your final answer inside <final_answer></final_answer> tags."
)


def base_messages(problem: Problem) -> list[Message]:
    return [
        {"role": "system", "content": BASE_SYSTEM},
        {"role": "user", "content": problem.text()},
    ]
