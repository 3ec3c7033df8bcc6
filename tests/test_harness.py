"""Harnesses as a recorded dimension: cells, keys, stored columns, old results files."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import SMOL, ScriptedBackend
from slmscope.cli import app
from slmscope.models.catalog import CATALOG
from slmscope.paradigms.harness import HARNESSES
from slmscope.runs.plan import interpret
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import Store
from slmscope.tasks import load_tasks
from sweeps import execute_spec

TASKS = load_tasks("builtin:sentiment").tasks[:2]


def test_each_agent_runs_under_each_harness_and_base_once(tmp_path: Path) -> None:
    spec = RunSpec(
        models=("scripted",),
        paradigms=("base", "single"),
        tasks=("builtin:sentiment",),
        harnesses=("strict", "repair"),
    )
    cells = interpret(spec, cards={"scripted": CATALOG[SMOL]}, tasks=TASKS).cells
    assert [(c.paradigm, c.harness) for c in cells[:3]] == [
        ("base", "none"),
        ("single", "strict"),
        ("single", "repair"),
    ]
    keys = {(c.paradigm, c.harness): c.key for c in cells if c.task.id == TASKS[0].id}
    tag = spec.settings_tag()
    # Strict (and base) keep the form they had before harnesses; repair is its own cell; each
    # ends with the row's content fingerprint.
    content = f"|c:{TASKS[0].fingerprint()}"
    strict = f"scripted|single|{TASKS[0].dataset}|{TASKS[0].id}|{tag}"
    assert keys["single", "strict"] == strict + content
    assert keys["single", "repair"] == strict + f"|repair.r{HARNESSES['repair'].revision}" + content
    # The same untagged reply: a failure under strict, repaired under repair.
    untagged = "<think>easy</think> it reads as positive to me"
    script = []
    for _ in TASKS:
        script += ["positive", *[untagged] * 5, untagged, "<final_answer>positive</final_answer>"]
    store = Store(tmp_path / "run")
    backend = ScriptedBackend(script)
    cards = {"scripted": CATALOG[SMOL]}
    execute_spec(spec, cards, TASKS, store, backends={"scripted": backend})
    results = {(r.paradigm, r.harness, r.sample_id): r for r in store.results()}
    assert len(results) == 6
    first = TASKS[0].id
    assert results["base", "none", first].outcome == "ok"
    assert results["single", "strict", first].outcome == "no_final_answer"
    assert results["single", "repair", first].outcome == "ok"
    repaired = [s for s in store.steps() if s.harness == "repair" and s.sample_id == first]
    assert [s.repair for s in repaired] == [False, True]
    again = execute_spec(spec, cards, TASKS, store, backends={"scripted": backend})
    assert (again.skipped, again.done) == (6, 0)  # resumed: nothing runs twice
    store.close()
    shown = CliRunner().invoke(app, ["trace", str(tmp_path / "run"), first, "--harness", "repair"])
    assert shown.exit_code == 0, shown.output
    assert "scripted / single / repair" in shown.output and "/ strict /" not in shown.output
    assert "single turn 2 (repair)" in shown.output  # the call that answered the repair


def test_an_old_results_file_reads_as_strict(tmp_path: Path) -> None:
    """A results file from before harnesses: its agent rows ran the strict protocol."""
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    db = sqlite3.connect(run_dir / "results.sqlite")
    db.executescript(
        """
        CREATE TABLE results (id INTEGER PRIMARY KEY, run_id TEXT, cell_key TEXT UNIQUE,
            model TEXT, paradigm TEXT, dataset TEXT, task_type TEXT, sample_id TEXT);
        CREATE TABLE steps (id INTEGER PRIMARY KEY, run_id TEXT, cell_key TEXT, model TEXT,
            paradigm TEXT, dataset TEXT, sample_id TEXT, agent TEXT, turn INTEGER);
        INSERT INTO results (cell_key, paradigm) VALUES ('a', 'base'), ('b', 'single');
        INSERT INTO steps (cell_key, paradigm, turn) VALUES ('b', 'single', 1);
        """
    )
    db.close()
    store = Store(run_dir)
    assert {r.cell_key: r.harness for r in store.results()} == {"a": "none", "b": "strict"}
    (step,) = store.steps()
    assert (step.harness, step.repair) == ("strict", False)


def _rows(
    paradigm: str, harness: str, scores: list[float], outcomes: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "cell_key": f"{paradigm}|{harness}|{i}",
            "model": "m",
            "paradigm": paradigm,
            "harness": harness,
            "dataset": "builtin:sentiment",
            "task_type": "sentiment",
            "sample_id": f"s{i}",
            "outcome": outcome,
            "error": "the same action repeated: x" if outcome == "max_steps" else None,
            "score": score,
            "gold": "positive",
            "final_answer": "positive" if score else None,
            "total_tokens": 100 if paradigm == "base" else 1000,
            "latency_s": 1.0,
            "energy_j": None,
            "energy_method": "unavailable",
        }
        for i, (score, outcome) in enumerate(zip(scores, outcomes, strict=True))
    ]


def test_harness_effect_sets_the_harness_beside_the_paradigm() -> None:
    import pandas as pd

    from slmscope import analysis

    n = 20
    base = _rows("base", "none", [1.0] * 14 + [0.0] * 6, ["ok"] * n)
    strict = _rows(
        "single",
        "strict",
        [1.0] * 4 + [0.0] * 16,
        ["ok"] * 6 + ["no_final_answer"] * 12 + ["max_steps"] * 2,
    )
    repair = _rows("single", "repair", [1.0] * 14 + [0.0] * 6, ["ok"] * 19 + ["no_final_answer"])
    results = analysis.arms(pd.DataFrame(base + strict + repair))
    assert set(results["paradigm"]) == {"base", "single·strict", "single·repair"}
    steps = pd.DataFrame([{"cell_key": repair[0]["cell_key"], "error": "example_copy"}])
    table = analysis.harness_effect(results, steps).set_index(["paradigm", "harness"])
    s, r = table.loc[("single", "strict")], table.loc[("single", "repair")]
    assert (s["completion_rate"], r["completion_rate"]) == (6 / n, 19 / n)
    assert s["protocol_failure"] == 14 / n  # 12 without an answer, 2 repeats
    assert r["protocol_failure"] == 2 / n  # 1 without an answer, 1 example copy
    assert r["vs_strict"] == pytest.approx(0.5) and r["vs_strict_lo"] > 0
    assert s["vs_base"] == pytest.approx(-0.5) and s["vs_base_hi"] < 0
    assert math.isnan(table.loc[("base", "none"), "vs_base"])
    (flip,) = analysis.harness_flips(results)
    assert flip["by_harness"] == {"repair": "base", "strict": "base"} and not flip["flips"]
    cheap_repair = analysis.arms(
        pd.DataFrame(base + strict + [{**row, "total_tokens": 50} for row in repair])
    )
    (flip,) = analysis.harness_flips(cheap_repair)
    assert flip["by_harness"] == {"repair": "single", "strict": "base"} and flip["flips"]
