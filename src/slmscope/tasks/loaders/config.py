"""Declarative task configs (YAML): add a dataset without code.

name: fpb
task_type: sentiment              # one of the eight task types
file: fpb.jsonl                   # read from --data DIR (or relative to the config file)
hub: TheFinAI/en-fpb              # dataset-hub id, used when no file is given or found
split: test
shape: auto                       # auto | finben | flat
fields: {id: id, prompt: question, gold: label, context: table}   # for shape flat
choices: [negative, neutral, positive]
scorer: label_accuracy            # default: by task type
answer: label                     # answer format (tasks/answer_format.py); default: by type
prompt_template: "{prompt}"       # may use {prompt}, {context}, {choices}
few_shot: 0
limit: 50
seed: 0
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from slmscope.tasks.answer_format import AnswerFormat, format_named
from slmscope.tasks.errors import TaskFileError
from slmscope.tasks.record import TASK_TYPES, TaskType
from slmscope.tasks.scoring import DEFAULT_SCORER, SCORERS

SHAPES = ("auto", "finben", "flat")


@dataclass(frozen=True)
class TaskConfig:
    name: str
    task_type: TaskType
    file: str | None = None
    hub: str | None = None
    split: str = "test"
    shape: str = "auto"
    fields: dict[str, str] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    scorer: str = ""
    answer: str = ""
    prompt_template: str = "{prompt}"
    few_shot: int = 0
    limit: int | None = None
    seed: int = 0
    description: str = ""
    base_dir: Path | None = None  # the config file's folder, for relative file paths

    @property
    def scorer_name(self) -> str:
        return self.scorer or DEFAULT_SCORER[self.task_type]

    @property
    def answer_format(self) -> AnswerFormat:
        """The format of every row's answer: declared, else the task type's default."""
        return format_named(self.answer, self.task_type, self.choices, self.scorer)


def parse_config(data: Any, path: Path, lines: dict[str, int] | None = None) -> TaskConfig:
    """A TaskConfig from parsed YAML; every problem names the file, the line and the key
    (`lines`: each top-level key's line; a missing key is reported at line 1)."""

    def at(key: str) -> int:
        return (lines or {}).get(key, 1)

    if not isinstance(data, dict):
        raise TaskFileError(path, 1, "a task config must be a YAML mapping")
    known = {f.name for f in fields(TaskConfig)} - {"base_dir"}
    unknown = sorted(set(data) - known, key=lambda k: at(str(k)))
    if unknown:
        raise TaskFileError(
            path, at(str(unknown[0])), f"unknown key(s) {unknown}; known: {sorted(known)}"
        )
    for key in ("name", "task_type"):
        if not data.get(key):
            raise TaskFileError(path, at(key), f"missing key {key!r}")
    if data["task_type"] not in TASK_TYPES:
        raise TaskFileError(
            path,
            at("task_type"),
            f"key 'task_type': {data['task_type']!r} is not one of {', '.join(TASK_TYPES)}",
        )
    if not data.get("file") and not data.get("hub"):
        data = {**data, "file": f"{data['name']}.jsonl"}
    if data.get("shape", "auto") not in SHAPES:
        raise TaskFileError(path, at("shape"), f"key 'shape': use one of {SHAPES}")
    scorer = data.get("scorer") or ""
    if scorer and scorer not in SCORERS:
        raise TaskFileError(
            path, at("scorer"), f"key 'scorer': {scorer!r} is not one of {sorted(SCORERS)}"
        )
    choices = data.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        hint = (
            " (YAML reads unquoted yes/no/on/off as true/false: quote them)"
            if any(isinstance(c, bool) for c in choices or [])
            else ""
        )
        raise TaskFileError(path, at("choices"), f"key 'choices': expected a list of strings{hint}")
    try:
        format_named(data.get("answer"), data["task_type"], tuple(choices))
    except ValueError as err:
        raise TaskFileError(path, at("answer"), f"key 'answer': {err}") from None
    for key in ("few_shot", "seed"):
        if not isinstance(data.get(key, 0), int) or data.get(key, 0) < 0:
            raise TaskFileError(path, at(key), f"key {key!r}: expected a whole number >= 0")
    limit = data.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise TaskFileError(path, at("limit"), "key 'limit': expected a whole number >= 1")
    return TaskConfig(**{**data, "choices": tuple(choices), "base_dir": path.parent})


def load_config(path: Path) -> TaskConfig:
    if path.is_dir():
        raise TaskFileError(path, 0, "is a folder, not a task config")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except OSError as err:
        raise TaskFileError(path, 0, f"cannot read the file ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise TaskFileError(path, line, f"not UTF-8 text (at byte {err.start})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise TaskFileError(path, line, f"not valid YAML ({err})") from err
    lines = (
        {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
        if isinstance(node, yaml.MappingNode)
        else {}
    )
    return parse_config(data, path, lines)
