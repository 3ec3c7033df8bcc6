"""`slmscope run` end to end: real model, real SQLite store, resume, and failures mid-sweep."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SHARED_FINBEN, SMOL, ScriptedBackend, free_port
from slmscope import analysis
from slmscope.models.base import BackendUnavailable
from slmscope.models.catalog import CATALOG
from slmscope.paradigms.trace import OUTCOMES
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import RESULT_COLUMNS, STEP_COLUMNS, Store
from slmscope.tasks import SUITE, load_tasks
from sweeps import execute_spec


def slmscope(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slmscope", *args], capture_output=True, text=True, timeout=timeout
    )


def rows(db: Path, table: str) -> list[dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY id")]
    finally:
        con.close()


def test_run_builtin_writes_one_row_per_sample_and_resumes(smol_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = (
        "run",
        "--model",
        SMOL,
        "--tasks",
        "builtin",
        "--limit",
        "2",
        "--max-tokens",
        "48",
        "--out",
        str(out),
    )
    done = slmscope(*args)
    assert done.returncode == 0, done.stderr
    assert "builtin:table_qa" in done.stdout and "results:" in done.stdout
    db = out / "results.sqlite"
    results = rows(db, "results")
    assert len(results) == 16  # 8 datasets x 2 samples
    assert set(RESULT_COLUMNS) <= set(results[0])
    assert {r["dataset"] for r in results} == set(SUITE)
    for r in results:
        assert r["model"] == SMOL and r["paradigm"] == "base"
        assert r["prompt_tokens"] > 0 and r["latency_s"] > 0 and r["n_calls"] == 1
        assert r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"]
        assert 0.0 <= r["score"] <= 1.0
        assert r["energy_j"] > 0 and r["energy_method"] == "estimate"  # no RAPL or GPU here
        assert r["peak_rss_mb"] > 50
    # Later samples reuse the shared system prompt from the KV cache.
    assert sum(r["cached_tokens"] for r in results) > 0
    steps = rows(db, "steps")
    assert len(steps) == 16 and set(STEP_COLUMNS) <= set(steps[0])
    assert {s["agent"] for s in steps} == {"base"}
    assert json.loads(steps[0]["messages"])[0]["role"] == "system"
    run = rows_runs = sqlite3.connect(db).execute("SELECT spec, models, machine, status FROM runs")
    spec, models, machine, status = next(iter(run))
    rows_runs.close()
    assert json.loads(spec)["models"] == [SMOL] and status == "complete"
    assert json.loads(models)[SMOL]["sha256"] == CATALOG[SMOL].sha256
    assert json.loads(machine)["cores"] >= 1
    # Not a terminal: plain progress lines instead of a live bar.
    assert "[16/16] smollm2-135m-instruct base" in done.stderr
    # The pandas API reads the same file.
    frame = analysis.load(out)
    assert len(frame) == 16 and set(RESULT_COLUMNS) <= set(frame.columns)
    summary = analysis.summarize(frame)
    assert len(summary) == 8 and (summary["score_lo"] <= summary["score"]).all()
    assert len(analysis.load_steps(out)) == 16
    # The same command again resumes: nothing is redone.
    again = slmscope(*args)
    assert again.returncode == 0, again.stderr
    assert "16 of 16 samples already" in again.stderr
    assert len(rows(db, "results")) == 16


def test_run_against_an_openai_compatible_server(llama_server: str, tmp_path: Path) -> None:
    out = tmp_path / "served"
    done = slmscope(
        "run",
        "--model",
        SMOL,
        "--base-url",
        llama_server,
        "--tasks",
        "builtin:sentiment",
        "--limit",
        "3",
        "--max-tokens",
        "16",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    results = rows(out / "results.sqlite", "results")
    assert len(results) == 3
    assert all(r["ttft_s"] is not None and r["ttft_s"] > 0 for r in results)
    models = json.loads(
        next(iter(sqlite3.connect(out / "results.sqlite").execute("SELECT models FROM runs")))[0]
    )
    assert models[SMOL]["backend"].startswith("openai:") and models[SMOL]["source"] == "served"
    # What the server says of itself is recorded; its energy is never the in-process estimate.
    assert models[SMOL]["server"]["models"]["data"][0]["id"] == SMOL
    assert models[SMOL]["energy"]["method"] in ("unavailable", "rapl", "nvml")
    assert all(r["energy_method"] == models[SMOL]["energy"]["method"] for r in results)


def test_dead_server_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    start = time.monotonic()
    done = slmscope(
        "run",
        "--model",
        "m",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--tasks",
        "builtin:sentiment",
        "--out",
        str(tmp_path / "dead"),
    )
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "cannot reach the server" in done.stderr
    assert "Traceback" not in done.stderr
    assert "checked before the first sample: nothing was run or stored" in done.stderr
    assert not (tmp_path / "dead" / "results.sqlite").exists()
    assert time.monotonic() - start < 30


def test_unknown_model_lists_known_ids(tmp_path: Path) -> None:
    done = slmscope("run", "--model", "gpt-7", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "unknown model 'gpt-7'" in done.stderr and SMOL in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_task_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "task_type": "qa", "prompt": "p", "gold": "1"}\n{oops\n')
    done = slmscope("run", "--model", SMOL, "--tasks", str(bad), "--out", str(tmp_path / "y"))
    assert done.returncode == 2
    assert f"{bad}:2: not valid JSON" in done.stderr


def test_crash_mid_sweep_keeps_finished_samples_and_resumes(tmp_path: Path) -> None:
    """The backend dies on the third sample; two stay saved and a rerun does only the rest."""
    tasks = load_tasks("builtin:sentiment").tasks[:5]
    spec = RunSpec(models=("scripted",), paradigms=("base",), tasks=("builtin:sentiment",))
    cards = {"scripted": CATALOG[SMOL]}
    store = Store(tmp_path / "crash")
    dying = ScriptedBackend(["positive", "negative", BackendUnavailable("server gone")])
    with pytest.raises(BackendUnavailable):
        execute_spec(spec, cards, tasks, store, backends={"scripted": dying})
    assert [r.sample_id for r in store.results()] == ["sent-01", "sent-02"]
    assert store.runs()[0]["status"] == "failed"
    healthy = ScriptedBackend(["neutral"] * 3)
    totals = execute_spec(spec, cards, tasks, store, backends={"scripted": healthy})
    assert (totals.skipped, totals.done) == (2, 3)
    assert len(healthy.calls) == 3
    assert [r.sample_id for r in store.results()] == [t.id for t in tasks]
    assert store.runs()[-1]["status"] == "complete"


@pytest.mark.skipif(not SHARED_FINBEN.is_dir(), reason="FinBen samples absent")
def test_run_finben_from_a_data_folder(smol_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "fin"
    done = slmscope(
        "run",
        "--model",
        SMOL,
        "--tasks",
        "finben:fpb",
        "--tasks",
        "finben:finqa",
        "--data",
        str(SHARED_FINBEN),
        "--limit",
        "3",
        "--max-tokens",
        "24",
        "--n-ctx",
        "4096",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    results = rows(out / "results.sqlite", "results")
    assert sorted({r["dataset"] for r in results}) == ["finben:finqa", "finben:fpb"]
    assert len(results) == 6
    fpb = [r for r in results if r["dataset"] == "finben:fpb"]
    assert {r["gold"] for r in fpb} <= {"negative", "neutral", "positive"}
    assert "[" in done.stdout  # scores carry their bootstrap interval


def test_skip_bad_rows_are_recorded_in_the_store(smol_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    good = {"id": "a", "query": "Is 2 > 1? Answer Yes or No.", "answer": "Yes"}
    data.write_text(
        "\n".join(
            json.dumps(r) for r in (good, {"id": "b", "query": "Is 1 > 2?"}, {**good, "id": "c"})
        )
    )
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(
        'name: mine\ntask_type: classification\nfile: data.jsonl\nchoices: ["Yes", "No"]\n'
    )
    out = tmp_path / "bad"
    stopped = slmscope("run", "--model", SMOL, "--tasks", str(cfg), "--out", str(out))
    assert stopped.returncode == 2 and f"{data}:2: field 'answer': missing" in stopped.stderr
    done = slmscope(
        "run",
        "--model",
        SMOL,
        "--tasks",
        str(cfg),
        "--skip-bad-rows",
        "--max-tokens",
        "8",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "1 bad row(s) skipped" in done.stderr
    assert len(rows(out / "results.sqlite", "results")) == 2
    bad = rows(out / "results.sqlite", "bad_rows")
    assert [(b["line"], b["field"]) for b in bad] == [(2, "answer")]


QWEN = "qwen2.5-coder-0.5b-instruct"


@pytest.mark.parametrize("model", [SMOL, QWEN])
def test_agent_paradigms_end_to_end_on_real_models(
    smol_path: Path, tmp_path: Path, model: str
) -> None:
    """Single agent, multi agent and fallback on a real model: every sample gets an outcome
    of the taxonomy, steps name their agents, and trace prints them."""
    out = tmp_path / "agents"
    done = slmscope(
        "run",
        "--model",
        model,
        "--tasks",
        "builtin:table_qa",
        "--limit",
        "1",
        "--paradigm",
        "single",
        "--paradigm",
        "multi",
        "--paradigm",
        "single+fallback",
        "--max-tokens",
        "48",
        "--out",
        str(out),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    results = {r["paradigm"]: r for r in rows(out / "results.sqlite", "results")}
    assert set(results) == {"single", "multi", "single+fallback"}
    for r in results.values():
        assert r["outcome"] in OUTCOMES and r["n_calls"] >= 1
    fallback = results["single+fallback"]
    assert fallback["agent_outcome"] in OUTCOMES
    steps = rows(out / "results.sqlite", "steps")
    agents = {s["agent"] for s in steps if s["paradigm"] == "multi"}
    assert "supervisor" in agents
    if fallback["agent_outcome"] != "ok":  # the base model answered too: both costs counted
        assert any(s["agent"] == "base" for s in steps if s["paradigm"] == "single+fallback")
    sample = next(iter(results.values()))["sample_id"]
    shown = slmscope("trace", str(out), sample, "--paradigm", "multi")
    assert shown.returncode == 0, shown.stderr
    assert "supervisor turn 1" in shown.stdout and "outcome" in shown.stdout


def test_error_text_keeps_its_brackets() -> None:
    """Error text is printed literally: Rich must not read '[hub]' or '[test]' as markup."""
    done = slmscope("tasks", "show", "finben:fomc")
    assert done.returncode == 2
    assert "TheFinAI/flare-fomc[test]:0:" in done.stderr
    if importlib.util.find_spec("datasets") is None:
        assert "pip install 'slmscope[hub]'" in done.stderr
