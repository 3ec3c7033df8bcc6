"""The records of one sample: the `Problem` (all a model is shown) and the `Reference` (what it
is scored against), and the `Task` that pairs them as a loader makes them.

Paradigms, prompts, grammars and the server take a `Problem` only, so nothing they show the
model can depend on the gold; scorers take the whole `Task`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from slmscope.tasks.answer_format import AnswerFormat, default_format

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
class Problem:
    """What the model is shown: the prompt, its context and the answer's format (with the
    choices). `id` and `dataset` name it for records; they are not shown."""

    id: str
    dataset: str
    task_type: TaskType
    prompt: str
    answer: AnswerFormat
    context: str | None = None  # passage or table (markdown) the question is about

    @property
    def choices(self) -> tuple[str, ...]:
        return self.answer.choices

    def text(self) -> str:
        """The problem as every paradigm states it: the context (passage or table) first, then
        the prompt, then the line saying what the final answer looks like."""
        body = f"{self.context}\n\n{self.prompt}" if self.context else self.prompt
        return f"{body}\n\n{self.answer.instruction()}"


@dataclass(frozen=True)
class Reference:
    """What a sample is scored against: never shown to the model."""

    gold: str
    scorer: str
    rule: str | None = None  # how the gold answer was produced, for readers to check


@dataclass(frozen=True)
class Task:
    """One sample as a loader makes it. `answer` is the dataset's declared format (by default
    the task type's, from the choices): never read off this row's gold."""

    id: str
    dataset: str
    task_type: TaskType
    prompt: str
    gold: str
    scorer: str
    choices: tuple[str, ...] = ()
    context: str | None = None
    rule: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    answer: AnswerFormat | None = None

    @property
    def problem(self) -> Problem:
        return Problem(
            id=self.id,
            dataset=self.dataset,
            task_type=self.task_type,
            prompt=self.prompt,
            answer=self.answer or default_format(self.task_type, self.choices, self.scorer),
            context=self.context,
        )

    @property
    def reference(self) -> Reference:
        return Reference(self.gold, self.scorer, self.rule)

    def fingerprint(self) -> str:
        """What the row holds (prompt, context, choices, gold, and the answer format its
        dataset declares), as 12 hex digits: a row edited in its file, or a format changed in
        its config, is another sample, whatever its id."""
        held = [self.prompt, self.context, list(self.choices), self.gold, self.problem.answer.kind]
        return hashlib.sha256(json.dumps(held).encode()).hexdigest()[:12]
