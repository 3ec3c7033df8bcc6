"""Tasks: the Task record, loaders, the built-in suite, the scorers and sampling.

Task set references:
  builtin              the whole built-in suite
  builtin:NAME         one built-in dataset (`slmscope tasks list`)
  finben:NAME          a FinBen dataset: DIR/NAME.jsonl with --data DIR, else the hub set
  PATH.yaml            a task config (see tasks/loaders/config.py)
  PATH.jsonl|json|csv|parquet   slmscope's own task format
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from slmscope.errors import UserError
from slmscope.tasks.builtin import SUITE
from slmscope.tasks.errors import TaskFileError
from slmscope.tasks.loaders.config import TaskConfig, load_config
from slmscope.tasks.loaders.dataset import BadRow, Loaded, load_dataset
from slmscope.tasks.loaders.files import FORMATS
from slmscope.tasks.loaders.native import load_native
from slmscope.tasks.record import Task
from slmscope.tasks.sampling import stratified_sample

__all__ = [
    "FINBEN_DIR",
    "SUITE",
    "BadRow",
    "Loaded",
    "Task",
    "TaskFileError",
    "UnknownTaskSet",
    "finben_config",
    "finben_names",
    "load_tasks",
]

FINBEN_DIR = Path(__file__).parent / "configs" / "finben"


class UnknownTaskSet(UserError, LookupError):
    pass


def finben_names() -> list[str]:
    return sorted(p.stem for p in FINBEN_DIR.glob("*.yaml"))


def finben_config(name: str) -> TaskConfig:
    path = FINBEN_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UnknownTaskSet(f"unknown FinBen set {name!r}; known: {', '.join(finben_names())}")
    return load_config(path)


def load_tasks(
    ref: str,
    *,
    data_dir: Path | None = None,
    skip_bad_rows: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> Loaded:
    """The tasks of one task set reference (see the module docstring), sampled to `limit`."""
    if ref == "builtin":
        tasks = [task for make in SUITE.values() for task in make()]
        return Loaded(stratified_sample(tasks, limit, seed), source="builtin")
    name = ref if ref in SUITE else f"builtin:{ref}"
    if name in SUITE:
        return Loaded(stratified_sample(SUITE[name](), limit, seed), source=name)
    if ref.startswith("finben:"):
        return load_dataset(
            finben_config(ref.split(":", 1)[1]),
            dataset=ref,
            data_dir=data_dir,
            skip_bad_rows=skip_bad_rows,
            limit=limit,
            seed=seed,
        )
    path = Path(ref).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        cfg = load_config(path)
        return load_dataset(
            cfg,
            dataset=cfg.name,
            data_dir=data_dir,
            skip_bad_rows=skip_bad_rows,
            limit=limit,
            seed=seed,
        )
    if path.suffix.lower().lstrip(".") in (*FORMATS, "ndjson"):
        loaded = load_native(path, skip_bad_rows=skip_bad_rows)
        return dataclasses.replace(loaded, tasks=stratified_sample(loaded.tasks, limit, seed))
    raise UnknownTaskSet(
        f"unknown task set {ref!r}: use 'builtin', one of {', '.join(SUITE)}, "
        f"finben:NAME ({', '.join(finben_names())}), a .yaml task config, or a task file"
    )
