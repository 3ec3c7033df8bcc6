"""A sweep resolved once: `resolve(spec)` does all the interpretation of a spec (settings
checked, models resolved, roster read, tasks loaded, one paradigm built per paradigm and
harness, each server checked and its grammars probed, the cells planned), and the executors
(in process and Ray) only run the `ResolvedSweep` it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from slmscope.errors import ConfigError
from slmscope.models import Backend, ModelCard, check_backend
from slmscope.models import resolve as resolve_model
from slmscope.models.base import NATIVE_TOOLS_HINT, BackendError, ToolsUnsupported
from slmscope.paradigms import (
    NO_HARNESS,
    TOOL_MODES,
    AgentLimits,
    Paradigm,
    ToolMode,
    get_paradigm,
    harness_label,
    harness_named,
)
from slmscope.paradigms.multi_agent import Specialist, load_roster
from slmscope.runs.events import SettingIgnored
from slmscope.runs.records import Result
from slmscope.runs.spec import RunSpec
from slmscope.tasks import SUITE, BadRow, load_tasks
from slmscope.tasks.record import Task
from slmscope.tools.isolation import availability

MIN_PROMPT_TOKENS = 128  # the smallest prompt template with a short task in it
CONTENT_MARK = "|c:"  # what ends a key: the row's content fingerprint
Arm = tuple[str, str]  # (paradigm, harness label)


@dataclass(frozen=True)
class Cell:
    """One sample of one dataset, for one model under one paradigm and harness (`none` for a
    paradigm without one); `key` is stable across runs."""

    model: str
    paradigm: str
    harness: str
    task: Task
    key: str

    @property
    def arm(self) -> Arm:
        return self.paradigm, self.harness


@dataclass(frozen=True)
class ResolvedSweep:
    """Everything a spec means, resolved: what the executors run."""

    spec: RunSpec
    cards: Mapping[str, ModelCard]
    bad_rows: tuple[BadRow, ...]
    paradigms: Mapping[Arm, Paradigm]  # one instance per arm: agents keep their index
    cells: tuple[Cell, ...]
    ignored: tuple[SettingIgnored, ...]  # settings given that this sweep has no use for
    tool_left_out: str | None  # why the python tool is left out, when it is

    def part_arm(self, cell: Cell, part: str) -> Arm | None:
        """The arm of this sweep whose trace on the same sample `part` (a paradigm a composite
        is computed from) names: under the cell's harness, or the part's only one."""
        for arm in ((part, cell.harness), (part, NO_HARNESS)):
            if arm in self.paradigms:
                return arm
        return None


def tool_mode_of(spec: RunSpec) -> ToolMode:
    """The spec's tool mode, checked (a spec is plain data: it may come from a file)."""
    if spec.tool_mode not in TOOL_MODES:
        raise ConfigError(
            f"unknown tool mode {spec.tool_mode!r}; available: {', '.join(TOOL_MODES)}"
        )
    return "native" if spec.tool_mode == "native" else "tags"


def check_settings(spec: RunSpec) -> None:
    """Settings usable before anything loads (ConfigError otherwise)."""
    room = spec.gen.max_tokens + MIN_PROMPT_TOKENS
    if spec.n_ctx < room:
        raise ConfigError(
            f"a context window of {spec.n_ctx} tokens cannot hold a prompt and "
            f"{spec.gen.max_tokens} new tokens: give at least {room} (--n-ctx, or budgets: "
            "context_window in a spec)"
        )
    tool_mode_of(spec)
    for name in spec.harnesses:
        harness_named(name)


def build_paradigms(spec: RunSpec, roster: tuple[Specialist, ...]) -> dict[Arm, Paradigm]:
    """One paradigm per arm: each agent under each of the spec's harnesses; a paradigm that
    has no harness once."""
    limits = AgentLimits(
        max_turns=spec.max_turns,
        max_tokens_per_turn=spec.gen.max_tokens,
        token_budget=spec.token_budget,
        context_window=spec.n_ctx,
    )
    built: dict[Arm, Paradigm] = {}
    mode = tool_mode_of(spec)
    harnesses = [harness_named(h) for h in spec.harnesses]
    for name in spec.paradigms:
        for harness in harnesses:
            made = get_paradigm(name, limits=limits, roster=roster, mode=mode, harness=harness)
            built.setdefault((name, harness_label(made)), made)
    return built


def load_all(spec: RunSpec) -> tuple[list[Task], list[BadRow]]:
    """Every task of the spec's references, each sample once. Results are kept by dataset
    name, so two files that would give the same name (`a/test.jsonl`, `b/test.jsonl`) are
    refused in one line rather than one overwriting the other."""
    data_dir = Path(spec.data_dir) if spec.data_dir else None
    tasks: list[Task] = []
    bad_rows: list[BadRow] = []
    origins: dict[str, str] = {}  # dataset name -> the file (or named set) it came from
    seen: set[tuple[str, str]] = set()
    for ref in spec.tasks:
        loaded = load_tasks(
            ref,
            data_dir=data_dir,
            skip_bad_rows=spec.skip_bad_rows,
            limit=spec.limit,
            seed=spec.seed,
        )
        path = Path(ref).expanduser()
        origin = str(path.resolve()) if path.is_file() else ref
        for task in loaded.tasks:
            first = origins.setdefault(task.dataset, origin)
            if first != origin and (Path(first).is_file() or path.is_file()):
                raise ConfigError(
                    f"{ref}: its dataset is named {task.dataset!r}, as is {first}'s; results "
                    "are kept by dataset name, so one would overwrite the other: rename one"
                )
            if (task.dataset, task.id) not in seen:  # `builtin` and `builtin:ner`: once
                seen.add((task.dataset, task.id))
                tasks.append(task)
        bad_rows.extend(loaded.bad_rows)
    return tasks, bad_rows


def ignored_settings(spec: RunSpec, cards: Mapping[str, ModelCard]) -> list[SettingIgnored]:
    """Settings given that this run has no use for: said, never silently dropped."""
    found = []
    if spec.data_dir and all(t == "builtin" or t in SUITE or f"builtin:{t}" in SUITE
                             for t in spec.tasks):  # fmt: skip
        found.append(SettingIgnored(
            f"--data {spec.data_dir}",
            "only built-in task sets are named (finben:NAME and .yaml configs read it)",
        ))  # fmt: skip
    single = [c.id for c in cards.values() if not c.abilities().parallel_slots]
    if spec.concurrency > 1 and single:
        found.append(SettingIgnored(
            f"--concurrency {spec.concurrency}",
            f"{', '.join(single)} run(s) embedded, one request at a time (it applies to "
            "served models, --base-url)",
        ))  # fmt: skip
    return found


def cell_key(model: str, paradigm: Paradigm, task: Task, tag: str) -> str:
    """The strict harness (and a paradigm without one) keep the form they had before
    harnesses; the repairing ones carry their revision. Every key ends with the row's content
    fingerprint, so that an edited row is a new sample (the old one is marked stale)."""
    key = f"{model}|{paradigm.name}|{task.dataset}|{task.id}|{tag}"
    if paradigm.harness is not None:
        key += paradigm.harness.key_part()
    return key + CONTENT_MARK + task.fingerprint()


def plan(
    spec: RunSpec, tasks: list[Task] | tuple[Task, ...], paradigms: Mapping[Arm, Paradigm]
) -> list[Cell]:
    """Cells in model-major order, so that each model is loaded once; within a model the arms
    take turns sample by sample, so that a machine slowing down mid-run weighs on every arm
    alike (their latencies stay comparable). An arm computed from others (a fallback) comes
    after them on each sample, so that it can reuse their traces."""
    tag = spec.settings_tag()
    arms = sorted(paradigms, key=lambda arm: bool(paradigms[arm].parts))
    return [
        Cell(model, name, harness, task, cell_key(model, paradigms[name, harness], task, tag))
        for model in spec.models
        for task in tasks
        for name, harness in arms
    ]


def superseded(
    stored: list[Result], cells: list[Cell] | tuple[Cell, ...]
) -> tuple[list[str], int, int]:
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


async def check_models(
    spec: RunSpec,
    cards: Mapping[str, ModelCard],
    paradigms: Mapping[Arm, Paradigm],
    backends: Mapping[str, Backend],
) -> None:
    """Each model can serve the run, before anything is stored: native tools where asked, a
    server that answers and serves the model, and applies grammars (tags mode) or honours
    `tool_choice: required` (native mode) where an arm needs them."""
    mode = tool_mode_of(spec)
    agents = any(p.uses_tools for p in paradigms.values())
    if mode == "native" and agents:
        lacking = [m for m, card in cards.items() if not card.abilities().native_tools]
        if lacking:
            raise ToolsUnsupported(NATIVE_TOOLS_HINT, where=", ".join(lacking))
    grammar = mode == "tags" and any(
        p.harness is not None and p.harness.needs_grammar() for p in paradigms.values()
    )
    required = mode == "native" and any(
        p.harness is not None and p.harness.needs_required_tools() for p in paradigms.values()
    )
    for model_id, card in cards.items():
        try:
            await check_backend(
                card,
                stream=spec.stream,
                timeout_s=spec.request_timeout_s,
                retries=spec.retries,
                grammar=grammar,
                native_tools=mode == "native" and agents,
                required_tools=required,
                backend=backends.get(model_id),
            )
        except BackendError as err:
            err.add_note("checked before the first sample: nothing was run or stored")
            raise


def interpret(
    spec: RunSpec,
    *,
    cards: Mapping[str, ModelCard] | None = None,
    tasks: list[Task] | None = None,
) -> ResolvedSweep:
    """The spec resolved without contacting any server (what `sweep --plan` shows): settings
    checked, models resolved, roster read, tasks loaded, paradigms built, cells planned.
    `cards` and `tasks` replace the ones the spec names (a test's)."""
    check_settings(spec)
    cards = cards or {m: resolve_model(m, base_url=spec.base_url) for m in spec.models}
    roster = load_roster(Path(spec.roster)) if spec.roster else ()
    paradigms = build_paradigms(spec, roster)
    bad_rows: list[BadRow] = []
    if tasks is None:
        tasks, bad_rows = load_all(spec)
    sandboxed, why = availability()
    left_out = why if not sandboxed and any(p.uses_tools for p in paradigms.values()) else None
    return ResolvedSweep(
        spec=spec,
        cards=dict(cards),
        bad_rows=tuple(bad_rows),
        paradigms=paradigms,
        cells=tuple(plan(spec, tasks, paradigms)),
        ignored=tuple(ignored_settings(spec, cards)),
        tool_left_out=left_out,
    )


async def resolve(
    spec: RunSpec,
    *,
    backends: Mapping[str, Backend] | None = None,
    cards: Mapping[str, ModelCard] | None = None,
    tasks: list[Task] | None = None,
) -> ResolvedSweep:
    """The spec resolved (see the module docstring), its models checked: what a sweep runs.
    `backends` replace the models' own (a test's scripted ones: not preflighted)."""
    sweep = interpret(spec, cards=cards, tasks=tasks)
    await check_models(spec, sweep.cards, sweep.paradigms, backends or {})
    return sweep
