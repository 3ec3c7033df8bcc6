"""Tasks from a TaskConfig: rows from a file or the dataset hub, in either FinBen shape or a
flat field mapping, checked by task type, sampled (stratified by label) and given few-shot
examples.

FinBen shapes:
  repository: {"id", "conversations": [{"from": "human", "value": PROMPT},
                                       {"from": "agent" | "assistant", "value": GOLD}], ...}
  dataset hub: {"id", "query": PROMPT, "answer": GOLD, "choices": [...], "gold": INDEX, "text"}
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from slmscope.tasks.answer_format import format_named
from slmscope.tasks.errors import TaskFileError
from slmscope.tasks.labels import normalize_label, parse_entities
from slmscope.tasks.loaders.config import TaskConfig
from slmscope.tasks.loaders.files import Unreadable, read_rows
from slmscope.tasks.record import Task
from slmscope.tasks.sampling import stratified_sample
from slmscope.tasks.scoring import is_single_number

LABEL_TYPES = ("sentiment", "classification", "stock_movement", "credit_scoring", "bankruptcy")


@dataclass(frozen=True)
class BadRow:
    """A row left out under --skip-bad-rows, with where it was and what was wrong."""

    source: str
    line: int
    field: str
    message: str


@dataclass
class Loaded:
    tasks: list[Task]
    bad_rows: list[BadRow] = field(default_factory=list)
    source: str = ""


class _RowProblem(Exception):
    def __init__(self, field_name: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.field = field_name
        self.fatal = fatal  # a dataset-level problem (labels outside the choices): never skipped


def load_dataset(
    cfg: TaskConfig,
    *,
    dataset: str,
    data_dir: Path | None = None,
    skip_bad_rows: bool = False,
    limit: int | None = None,
    seed: int | None = None,
) -> Loaded:
    """The config's tasks, sampled to `limit` (else the config's limit) with `seed`."""
    source, rows = _rows(cfg, data_dir)
    tasks: list[Task] = []
    bad: list[BadRow] = []
    seen: set[str] = set()
    for line, row in rows:
        try:
            if isinstance(row, Unreadable):
                raise _RowProblem("(row)", row.message)
            task = _task(cfg, dataset, row, line)
            if task.id in seen:
                raise _RowProblem("id", f"duplicate id {task.id!r}")
        except _RowProblem as problem:
            if skip_bad_rows and not problem.fatal:
                bad.append(BadRow(source, line, problem.field, str(problem)))
                continue
            said = f"field {problem.field!r}: " if problem.field != "(row)" else ""
            raise TaskFileError(source, line, f"{said}{problem}") from None
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskFileError(source, 0, "no usable rows")
    chosen = stratified_sample(tasks, limit or cfg.limit, cfg.seed if seed is None else seed)
    if cfg.few_shot:
        chosen = _with_examples(chosen, tasks, cfg.few_shot, cfg.seed if seed is None else seed)
    return Loaded(chosen, bad, source)


def _rows(cfg: TaskConfig, data_dir: Path | None) -> tuple[str, Iterator[tuple[int, Any]]]:
    if cfg.file and data_dir is not None:  # --data DIR means local files only
        path = data_dir / cfg.file
        return str(path), read_rows(path)
    if cfg.file and cfg.base_dir is not None:
        path = cfg.base_dir / cfg.file
        if path.is_file() or not cfg.hub:
            return str(path), read_rows(path)
    if cfg.hub:
        return f"{cfg.hub}[{cfg.split}]", _hub_rows(cfg.hub, cfg.split)
    raise TaskFileError(str(cfg.base_dir or "."), 0, f"{cfg.name}: no file and no hub id")


def _hub_rows(hub: str, split: str) -> Iterator[tuple[int, Any]]:
    where = f"{hub}[{split}]"
    try:
        from datasets import load_dataset as hub_load
    except ImportError as err:
        raise TaskFileError(
            where,
            0,
            "reading from the dataset hub needs the datasets package "
            "(pip install 'slmscope[hub]'), or pass --data DIR",
        ) from err
    try:
        data = hub_load(hub, split=split)
    except Exception as err:  # offline, unknown id, gated: the hub raises many types
        raise TaskFileError(
            where,
            0,
            f"cannot load from the hub ({type(err).__name__}: {err}); "
            "offline, pass --data DIR holding the file",
        ) from err
    yield from enumerate(data, 1)


def _field(row: dict[str, Any], name: str) -> Any:
    value = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise _RowProblem(name, "missing")
        value = value[part]
    return value


def _extract(cfg: TaskConfig, row: dict[str, Any]) -> tuple[str, str, str | None, list[str], str]:
    """(prompt, gold, context, row choices, the gold's field name in the row) by row shape."""
    shape = cfg.shape
    if shape == "auto":
        shape = "finben" if ("conversations" in row or "query" in row) else "flat"
    if shape == "finben" and "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list):
            raise _RowProblem("conversations", "expected a list of turns")
        human = next((t for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
        agent = next(
            (
                t
                for t in turns
                if isinstance(t, dict) and t.get("from") in ("agent", "assistant", "gpt")
            ),
            None,
        )
        if human is None or not human.get("value"):
            raise _RowProblem("conversations", "no human turn with a value")
        if agent is None or agent.get("value") is None:
            raise _RowProblem("conversations", "no agent/assistant turn holding the answer")
        return str(human["value"]), str(agent["value"]), None, [], "conversations"
    if shape == "finben":
        for key in ("query", "answer"):
            if row.get(key) is None:
                raise _RowProblem(key, "missing")
        choices = row.get("choices") or []
        return str(row["query"]), str(row["answer"]), None, [str(c) for c in choices], "answer"
    names = {"prompt": "prompt", "gold": "gold", **cfg.fields}
    prompt, gold = _field(row, names["prompt"]), _field(row, names["gold"])
    context = _field(row, names["context"]) if "context" in names else None
    context_text = None if context is None else str(context)
    return str(prompt), str(gold), context_text, [], names["gold"]


def _task(cfg: TaskConfig, dataset: str, row: Any, line: int) -> Task:
    if not isinstance(row, dict):
        raise _RowProblem("row", f"expected an object, got {type(row).__name__}")
    prompt, gold, context, row_choices, gold_field = _extract(cfg, row)
    id_field = cfg.fields.get("id", "id")
    sample_id = (
        str(row[id_field]) if row.get(id_field) not in (None, "") else content_id(prompt, gold)
    )
    if not prompt.strip():
        raise _RowProblem(cfg.fields.get("prompt", "prompt"), "empty prompt")
    choices = cfg.choices or tuple(row_choices)
    try:
        gold = _checked_gold(cfg, gold.strip(), choices)
    except _RowProblem as problem:
        problem.field = gold_field  # name the field as the file spells it
        raise
    try:
        answer = format_named(cfg.answer, cfg.task_type, choices, cfg.scorer)  # per config
    except ValueError as err:
        raise _RowProblem("choices", str(err), fatal=True) from None
    text = cfg.prompt_template.format(
        prompt=prompt, context=context or "", choices=", ".join(choices)
    )
    return Task(
        id=sample_id,
        dataset=dataset,
        task_type=cfg.task_type,
        prompt=text,
        gold=gold,
        scorer=scorer_for(cfg.scorer_name, gold),
        choices=choices,
        context=context,
        rule=f"gold from {cfg.name} (line {line})",
        answer=answer,
    )


def content_id(prompt: str, gold: str) -> str:
    """A stable id for a row that has none: the same row gets the same id in every file."""
    return "row-" + hashlib.sha256(f"{prompt}\x00{gold}".encode()).hexdigest()[:12]


def scorer_for(declared: str, gold: str) -> str:
    """The numeric scorer reads one number; a QA gold that is text or several values (TAT-QA
    spans) is scored by token F1 instead. (The scorer may follow the gold; the answer format,
    which the model is shown, is the dataset's and does not.)"""
    return "qa_f1" if declared == "numeric_match" and not is_single_number(gold) else declared


def _checked_gold(cfg: TaskConfig, gold: str, choices: tuple[str, ...]) -> str:
    """The gold answer in its canonical spelling, or the reason it is unusable."""
    if cfg.task_type in LABEL_TYPES and choices:
        canonical = {normalize_label(c): c for c in choices}.get(normalize_label(gold))
        if canonical is None:
            raise _RowProblem(
                "gold",
                f"label {gold!r} is not one of the declared choices "
                f"{list(choices)}; the dataset is refused",
                fatal=True,
            )
        return canonical
    if cfg.task_type == "ner" and gold and not parse_entities(gold):
        raise _RowProblem("gold", "no 'entity, TYPE' line (TYPE one of PER, ORG, LOC)")
    if cfg.task_type == "qa" and not gold:
        raise _RowProblem("gold", "empty answer")
    if cfg.task_type == "summarization" and not gold:
        raise _RowProblem("gold", "empty reference summary")
    return gold


def _with_examples(chosen: list[Task], pool: list[Task], k: int, seed: int) -> list[Task]:
    """Each chosen task gets k solved examples drawn (seeded) from tasks not chosen."""
    chosen_ids = {t.id for t in chosen}
    spare = [t for t in pool if t.id not in chosen_ids]
    if len(spare) < k:
        raise TaskFileError(
            chosen[0].dataset,
            0,
            f"few_shot {k} needs {k} rows besides the "
            f"{len(chosen)} sampled; only {len(spare)} left",
        )
    rng = random.Random(seed)
    out = []
    for task in chosen:
        shots = rng.sample(spare, k)
        prefix = "".join(
            f"Example {n}:\n{s.prompt}\nAnswer: {s.gold}\n\n" for n, s in enumerate(shots, 1)
        )
        out.append(replace(task, prompt=prefix + task.prompt))
    return out
