"""A sweep spec in YAML: checked as a whole before anything runs, every mistake naming its line.

    models: [smollm2-135m-instruct]
    paradigms: [base]
    tasks: [builtin]
    samples: 3

is a complete spec (the study's defaults fill the rest: temperature 0, top_p 0.9, 5 turns).
A model is a catalog id, a .gguf path, `hf:OWNER/REPO/FILE.gguf`, or a served model:
`{name: NAME, base_url: http://host:port/v1, concurrency: 4}`: the models of one spec share
one endpoint, and `concurrency` (the largest given) is the requests in flight to it.
Several `seeds` make one run per seed, in the same run directory.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slmscope.errors import ConfigError
from slmscope.metering.energy import METER_CHOICES
from slmscope.models import UnknownModel, resolve
from slmscope.models.base import GenerationConfig
from slmscope.models.kv_states import DEFAULT_BUDGET_MB
from slmscope.paradigms import DEFAULT_HARNESS, HARNESSES, PARADIGM_NAMES, TOOL_MODES
from slmscope.runs.spec import RunSpec
from slmscope.tasks import SUITE, finben_names

KEYS = {
    "models": "list of models",
    "paradigms": f"list of {', '.join(PARADIGM_NAMES)}",
    "harnesses": f"list of {', '.join(HARNESSES)}",
    "tasks": "list of task sets (builtin, builtin:NAME, finben:NAME, a file)",
    "samples": "samples per dataset, a whole number >= 1",
    "seeds": "list of whole numbers",
    "generation": "max_tokens, temperature, top_p",
    "budgets": "max_turns, token_budget, context_window",
    "tool_mode": f"one of {', '.join(TOOL_MODES)}",
    "data": "folder of local dataset files",
    "skip_bad_rows": "true or false",
    "roster": "YAML roster file for the multi paradigm",
    "energy": "auto, nvml, rapl, estimate or off",
    "stream": "true or false",
    "request_timeout": "seconds one request to a served model may take, > 0",
    "retries": "how often a failed request is tried again, a whole number >= 0",
    "kv_states_mb": "MiB for saved KV states on embedded models, a whole number >= 0",
}
GENERATION = ("max_tokens", "temperature", "top_p")
BUDGETS = ("max_turns", "token_budget", "context_window")


@dataclass(frozen=True)
class SpecFile:
    """The runs a spec file asks for (one per seed), and where each key was written."""

    path: Path
    runs: tuple[RunSpec, ...]


class _Reader:
    """Values of a parsed YAML mapping, with the line each came from for errors."""

    def __init__(self, path: Path, node: yaml.MappingNode) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        self.items: dict[str, list[int]] = {}  # the line of each item of a list
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            self.lines[name] = key.start_mark.line + 1
            if name in self.values:
                raise self.fail(name, "given twice")
            try:
                self.values[name] = yaml.safe_load(yaml.serialize(value))
            except yaml.YAMLError as err:  # a tag PyYAML will not build, say
                raise self.fail(
                    name, f"not a plain value ({getattr(err, 'problem', err)})"
                ) from err
            if isinstance(value, yaml.SequenceNode):
                self.items[name] = [item.start_mark.line + 1 for item in value.value]

    def fail(self, key: str, message: str, item: int | None = None) -> ConfigError:
        lines = self.items.get(key, [])
        line = lines[item] if item is not None and item < len(lines) else self.lines.get(key, 0)
        return ConfigError(f"{self.path}:{line}: {key}: {message}")

    def get(self, key: str, check: Callable[[Any], bool], expected: str, default: Any) -> Any:
        if key not in self.values:
            return default
        value = self.values[key]
        if not check(value):
            raise self.fail(key, f"expected {expected}, got {value!r}")
        return value

    def names(
        self, key: str, known: tuple[str, ...] | None, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = self.get(key, _is_list, "a list", list(default))
        items = [value] if isinstance(value, str) else list(value)
        if not items:
            raise self.fail(key, "the list is empty")
        for n, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(key, f"expected names, got {item!r}", n)
            if known is not None and item not in known:
                raise self.fail(key, f"unknown {item!r}; known: {', '.join(known)}", n)
        return tuple(dict.fromkeys(items))

    def section(self, key: str, fields: tuple[str, ...]) -> dict[str, Any]:
        value = self.get(key, _is_map, f"a mapping of {', '.join(fields)}", {})
        for name in value:
            if name not in fields:
                raise self.fail(key, f"unknown setting {name!r}; known: {', '.join(fields)}")
        return dict(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | str)


def _is_map(value: Any) -> bool:
    return isinstance(value, dict)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_meter(value: Any) -> bool:
    return value in METER_CHOICES


def _is_mode(value: Any) -> bool:
    return value in TOOL_MODES


def _is_seeds(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _model(reader: _Reader, n: int, entry: Any) -> tuple[str, str | None, int]:
    """One models: entry as (name, base_url, concurrency), the name checked against the
    catalog."""
    concurrency = 1
    if isinstance(entry, str):
        name, url = entry, None
    elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
        unknown = set(entry) - {"name", "base_url", "concurrency"}
        if unknown:
            raise reader.fail("models", f"unknown model setting(s) {sorted(unknown)}", n)
        name, url = entry["name"], entry.get("base_url")
        concurrency = entry.get("concurrency", 1)
        if not _whole(concurrency):
            raise reader.fail("models", "concurrency: expected a whole number >= 1", n)
    else:
        raise reader.fail("models", f"expected a model id or {{name, base_url}}, got {entry!r}", n)
    try:
        resolve(name, base_url=url)
    except UnknownModel as err:
        raise reader.fail("models", str(err), n) from err
    return name, url, concurrency


def _task(reader: _Reader, n: int, ref: str) -> str:
    """One tasks: entry, checked by form (files are read from the spec's folder)."""
    kind, _, name = ref.partition(":")
    if ref == "builtin" or (kind == "builtin" and (name in SUITE or f"builtin:{name}" in SUITE)):
        return ref
    if kind == "finben":
        if name not in finben_names():
            raise reader.fail(
                "tasks", f"unknown FinBen set {name!r}; known: {', '.join(finben_names())}", n
            )
        return ref
    path = Path(_relative(reader.path, ref) or ref)
    if not path.is_file():
        raise reader.fail(
            "tasks", f"{ref!r} is no task set and no file (see `slmscope tasks list`)", n
        )
    return str(path)


def load_spec(path: Path) -> SpecFile:
    """The spec file's runs; ConfigError naming the file and line on any mistake."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the spec ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (at byte {err.start})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(
            f"{path}:{line}: not valid YAML ({getattr(err, 'problem', err)})"
        ) from err
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: a spec is a mapping (models:, paradigms:, tasks:, ...)")
    reader = _Reader(path, node)
    for key in reader.values:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(KEYS)}"
            raise reader.fail(key, f"unknown key{hint}")
    if "models" not in reader.values:
        raise ConfigError(f"{path}: the spec needs models: (a list of model ids)")
    entries = reader.get("models", _is_list, "a list", [])
    listed = [entries] if isinstance(entries, str) else entries
    if not listed:
        raise reader.fail("models", "the list is empty: name at least one model")
    models = [_model(reader, n, e) for n, e in enumerate(listed)]
    urls = {url for _, url, _ in models}
    if len(urls) > 1:
        raise reader.fail("models", "all models of one spec come from one place (one base_url)")
    gen = reader.section("generation", GENERATION)
    budgets = reader.section("budgets", BUDGETS)
    seeds = reader.get("seeds", _is_seeds, "a list of whole numbers", [0])
    base = dict(
        models=tuple(dict.fromkeys(m for m, _, _ in models)),
        concurrency=max(c for _, _, c in models),
        paradigms=reader.names("paradigms", PARADIGM_NAMES, ("base",)),
        harnesses=reader.names("harnesses", tuple(HARNESSES), (DEFAULT_HARNESS,)),
        tasks=tuple(
            _task(reader, n, ref) for n, ref in enumerate(reader.names("tasks", None, ("builtin",)))
        ),
        limit=reader.get("samples", _whole, "a whole number >= 1", None),
        base_url=next(iter(urls)),
        tool_mode=reader.get("tool_mode", _is_mode, " or ".join(TOOL_MODES), "tags"),
        data_dir=_relative(path, reader.get("data", _is_str, "a folder", None)),
        roster=_relative(path, reader.get("roster", _is_str, "a file", None)),
        skip_bad_rows=reader.get("skip_bad_rows", _is_bool, "true or false", False),
        stream=reader.get("stream", _is_bool, "true or false", True),
        request_timeout_s=float(reader.get("request_timeout", _positive, "seconds > 0", 120.0)),
        retries=reader.get("retries", _count, "a whole number >= 0", 2),
        kv_states_mb=reader.get("kv_states_mb", _count, "a whole number >= 0", DEFAULT_BUDGET_MB),
        energy=reader.get("energy", _is_meter, " or ".join(METER_CHOICES), "auto"),
        max_turns=_checked(reader, "budgets", budgets.get("max_turns", 5)),
        token_budget=_checked(reader, "budgets", budgets.get("token_budget", 16_000)),
        n_ctx=_checked(reader, "budgets", budgets.get("context_window", 4096)),
    )
    runs = []
    for seed in dict.fromkeys(seeds):
        try:
            config = GenerationConfig(
                max_tokens=_checked(reader, "generation", gen.get("max_tokens", 256)),
                temperature=float(gen.get("temperature", 0.0)),
                top_p=float(gen.get("top_p", 0.9)),
                seed=seed,
            )
        except ConfigError as err:
            raise reader.fail("generation", str(err)) from err
        except (TypeError, ValueError) as err:
            raise reader.fail("generation", f"expected numbers ({err})") from err
        runs.append(RunSpec(**base, seed=seed, gen=config))
    return SpecFile(path, tuple(runs))


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _checked(reader: _Reader, key: str, value: Any) -> int:
    if not _whole(value):
        raise reader.fail(key, f"expected whole numbers >= 1, got {value!r}")
    return int(value)


def _relative(spec: Path, value: str | None) -> str | None:
    """A path in the spec is read from the spec's folder."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else spec.parent / path)
