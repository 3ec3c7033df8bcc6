"""A run's spec (models x paradigms x task sets x samples) and its plan of cells."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slmscope.metering.energy import DEFAULT_CORE_W, DEFAULT_IDLE_W
from slmscope.models.base import GenerationConfig
from slmscope.paradigms.harness import REPAIR_REVISION
from slmscope.paradigms.prompts import PROMPT_VERSION
from slmscope.runs.records import Result
from slmscope.tasks.record import Task
from slmscope.tools.isolation import availability


@dataclass(frozen=True)
class RunSpec:
    models: tuple[str, ...]
    paradigms: tuple[str, ...]
    tasks: tuple[str, ...]
    limit: int | None = None
    seed: int = 0
    gen: GenerationConfig = field(default_factory=GenerationConfig)
    n_ctx: int = 4096
    n_threads: int | None = None
    base_url: str | None = None
    data_dir: str | None = None
    skip_bad_rows: bool = False
    roster: str | None = None  # YAML roster for the multi-agent paradigm
    tool_mode: str = "tags"  # how agents call tools: the tag protocol or native `tools=`
    harnesses: tuple[str, ...] = ("repair",)  # how the agents' protocol is enforced
    stream: bool = True  # served models: stream replies (time to first token is measured)
    request_timeout_s: float = 120.0  # served models: one request's time limit
    retries: int = 2  # served models: a failed request (transient errors only) tried again
    energy: str = "auto"  # energy meter: auto, nvml, rapl, estimate, off
    core_w: float = DEFAULT_CORE_W  # the estimate's active power per busy core
    idle_w: float = DEFAULT_IDLE_W  # the estimate's idle power attributed to the run
    concurrency: int = 1  # requests in flight per served endpoint (embedded models: always 1)
    max_turns: int = 5  # the study's agent budget
    token_budget: int = 16_000  # prompt + completion tokens over all turns of one agent loop

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def settings_tag(self) -> str:
        """A short hash of everything besides the cell itself that changes a sample's result."""
        settings = {
            "gen": self.gen.sampling(),
            "n_ctx": self.n_ctx,
            "prompts": PROMPT_VERSION,
            "roster": Path(self.roster).read_text() if self.roster else None,
            "base_url": self.base_url,
        }
        budgets = {"max_turns": self.max_turns, "token_budget": self.token_budget}
        if budgets != {"max_turns": 5, "token_budget": 16_000}:  # older keys stay as they were
            settings["budgets"] = budgets
        if self.tool_mode != "tags":  # keeps the keys of tag-protocol runs as they were
            settings["tool_mode"] = self.tool_mode
        if not availability()[0]:  # agents without the python tool are another configuration
            settings["python_tool"] = "unavailable"
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Cell:
    """One sample of one dataset, for one model under one paradigm and harness (`none` for the
    base paradigm); `key` is stable across runs."""

    model: str
    paradigm: str
    harness: str
    task: Task
    key: str


def harnesses_of(spec: RunSpec, paradigm: str) -> tuple[str, ...]:
    """The harnesses a paradigm runs under: the spec's for an agent, none for the base model."""
    return ("none",) if paradigm == "base" else spec.harnesses


CONTENT_MARK = "|c:"  # what ends a key: the row's content fingerprint


def cell_key(model: str, paradigm: str, harness: str, task: Task, tag: str) -> str:
    """The strict harness (and the base paradigm) keep the form they had before harnesses;
    the repairing ones carry their revision. Every key ends with the row's content
    fingerprint, so that an edited row is a new sample (the old one is marked stale)."""
    key = f"{model}|{paradigm}|{task.dataset}|{task.id}|{tag}"
    if harness not in ("strict", "none"):
        key += f"|{harness}" + (f".r{REPAIR_REVISION}" if REPAIR_REVISION > 1 else "")
    return key + CONTENT_MARK + task.fingerprint()


def superseded(stored: list[Result], cells: list[Cell]) -> tuple[list[str], int, int]:
    """Stored samples that a planned cell replaces: the same model, paradigm, harness,
    settings, dataset and id, but other content. Returns their keys, and how many changed and
    how many were stored before rows were fingerprinted."""
    planned = {c.key for c in cells}
    prefixes = {c.key.rsplit(CONTENT_MARK, 1)[0] for c in cells}
    keys, changed, unmarked = [], 0, 0
    for r in stored:
        if r.stale or r.cell_key in planned:
            continue
        if r.cell_key.rsplit(CONTENT_MARK, 1)[0] in prefixes:
            keys.append(r.cell_key)
            changed += CONTENT_MARK in r.cell_key
            unmarked += CONTENT_MARK not in r.cell_key
    return keys, changed, unmarked


def plan(spec: RunSpec, tasks: list[Task]) -> list[Cell]:
    """Cells in model-major order, so that each model is loaded once; within a model the
    paradigms (and harnesses) take turns sample by sample, so that a machine slowing down
    mid-run weighs on every paradigm alike (their latencies stay comparable)."""
    tag = spec.settings_tag()
    # A fallback comes after the paradigms it can reuse (its agent, base) on each sample.
    paradigms = sorted(spec.paradigms, key=lambda name: name.endswith("+fallback"))
    return [
        Cell(model, paradigm, harness, task, cell_key(model, paradigm, harness, task, tag))
        for model in spec.models
        for task in tasks
        for paradigm in paradigms
        for harness in harnesses_of(spec, paradigm)
    ]
