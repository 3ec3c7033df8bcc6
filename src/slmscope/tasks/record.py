"""The Task record: one sample of one dataset, with everything a paradigm and a scorer need."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

TaskType = Literal[
    "sentiment",
    "classification",
    "ner",
    "qa",
    "stock_movement",
    "credit_scoring",
    "summarization",
    "bankruptcy",
]
TASK_TYPES: tuple[str, ...] = TaskType.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Task:
    id: str
    dataset: str
    task_type: TaskType
    prompt: str
    gold: str
    scorer: str
    choices: tuple[str, ...] = ()
    context: str | None = None  # passage or table (markdown) the question is about
    rule: str | None = None  # how the gold answer was produced, for readers to check
    meta: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What the row holds (prompt, context, choices, gold), as 12 hex digits: a row edited
        in its file is another sample, whatever its id."""
        held = [self.prompt, self.context, list(self.choices), self.gold]
        return hashlib.sha256(json.dumps(held).encode()).hexdigest()[:12]
