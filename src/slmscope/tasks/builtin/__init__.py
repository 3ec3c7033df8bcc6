"""The built-in suite: one small dataset per task type, authored and generated offline.

Each item carries the rule that produced its gold answer (`Task.rule`).
"""

from __future__ import annotations

from collections.abc import Callable

from slmscope.tasks.builtin.numbers import bankruptcy, credit_scoring, stock_movement, table_qa
from slmscope.tasks.builtin.text import headlines, ner, sentiment, summarization
from slmscope.tasks.record import Task

SUITE: dict[str, Callable[[], list[Task]]] = {
    "builtin:sentiment": sentiment,
    "builtin:headlines": headlines,
    "builtin:ner": ner,
    "builtin:table_qa": table_qa,
    "builtin:stock_movement": stock_movement,
    "builtin:credit_scoring": credit_scoring,
    "builtin:summarization": summarization,
    "builtin:bankruptcy": bankruptcy,
}
