"""The paradigm router (issue 21, section 1): fitted on stored results of real built-in rows
with known outcomes, no model calls."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from slmscope.analysis import routing
from slmscope.analysis.routing import comparison, cross_choices, fit, load_samples
from slmscope.cli import app
from slmscope.errors import ConfigError, UserError
from slmscope.paradigms.router import Objective, Router, load_router
from slmscope.runs.records import Result
from slmscope.runs.store import Store
from slmscope.tasks import load_tasks
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tasks.record import Problem

WINS = {"table_qa": "single", "credit_scoring": "single", "bankruptcy": "multi"}
ARMS = (("base", "none"), ("single", "act"), ("multi", "act"))
Scorer = Callable[[str, str], float]


def known_best(task_type: str, paradigm: str) -> float:
    """Each task type has one best arm: the agent WINS names, else base."""
    return 1.0 if paradigm == WINS.get(task_type, "base") else 0.0


def write_run(
    run_dir: Path,
    *,
    scorer: Scorer = known_best,
    gold: Callable[[str], str] = lambda g: g,
    arms: tuple[tuple[str, str], ...] = ARMS,
    limit: int = 6,
) -> None:
    """A run over real built-in rows whose arms score as `scorer` says; the agents cost more."""
    spec = {"tasks": ["builtin"], "limit": limit, "seed": 0, "data_dir": None}
    store = Store(run_dir)
    store.start_run("r1", "2026-12-03T00:00:00", spec=spec, versions={}, machine={}, models={})
    for task in load_tasks("builtin", limit=limit, seed=0).tasks:
        for paradigm, harness in arms:
            tokens = 100 if paradigm == "base" else 3000
            row = Result(
                run_id="r1", cell_key=f"{paradigm}|{task.id}", model="m", paradigm=paradigm,
                harness=harness, dataset=task.dataset, task_type=task.task_type,
                sample_id=task.id, outcome="ok", score=scorer(task.task_type, paradigm),
                gold=gold(task.gold), prompt_tokens=tokens, completion_tokens=10, cached_tokens=0,
                total_tokens=tokens + 10, n_calls=1, latency_s=tokens / 1000,
                energy_method="unavailable", usage_source="backend",
                created_at="2026-12-03T00:00:00", content=task.fingerprint(),
            )  # fmt: skip
            store.write_sample(row, [])
    store.close()


def test_a_router_recovers_the_best_arm_of_each_task_type(tmp_path: Path) -> None:
    write_run(tmp_path / "run")
    samples = load_samples(tmp_path / "run")
    assert samples.arms == ("base", "multi·act", "single·act") and len(samples.problems) == 48
    for method in ("type", "features", "knn"):
        router = fit(samples, method, Objective())  # type: ignore[arg-type]
        for problem in samples.problems:
            expected = {"single": "single·act", "multi": "multi·act"}.get(
                WINS.get(problem.task_type, "base"), "base"
            )
            assert router.choose(problem) == expected, (method, problem.id)
        chosen = cross_choices(samples, method, Objective(), mode="sample")  # type: ignore[arg-type]
        table, info = comparison(samples, chosen, Objective())
        scores = dict(zip(table["policy"], table["score"], strict=True))
        assert scores["router"] == scores["oracle"] == 1.0, method
        assert info["best_fixed"] == "base" and info["gap_closed"] == 1.0
        assert info["dataset_oracle"] == 1.0 and info["dataset_gap_closed"] == 1.0
    # A budget that only base fits: the router never picks an agent.
    cheap = fit(samples, "type", Objective("budget", "tokens", limit=500))
    assert {cheap.choose(p) for p in samples.problems} == {"base"}


def test_the_router_never_reads_a_gold(tmp_path: Path) -> None:
    """The same outcomes with every gold replaced: the same router, byte for byte, and no
    gold in the file."""
    write_run(tmp_path / "a")
    write_run(tmp_path / "b", gold=lambda g: f"GOLD-{g}-SECRET")
    a = fit(load_samples(tmp_path / "a"), "knn", Objective())
    b = fit(load_samples(tmp_path / "b"), "knn", Objective())
    assert a.to_json() == b.to_json()
    assert "SECRET" not in b.to_json()


def test_cross_validation_never_scores_a_sample_with_a_router_fitted_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(tmp_path / "run")
    samples = load_samples(tmp_path / "run")
    trained: list[set[str]] = []
    real_fit = routing.fit

    def spying_fit(part: routing.Samples, *args: object, **kwargs: object) -> Router:
        trained.append({p.id for p in part.problems})
        return real_fit(part, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(routing, "fit", spying_fit)
    scored: list[str] = []
    real_choose = Router.choose

    def spying_choose(self: Router, problem: object, **kwargs: object) -> str:
        assert problem.id not in trained[-1], problem.id  # type: ignore[attr-defined]
        scored.append(problem.id)  # type: ignore[attr-defined]
        return real_choose(self, problem, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Router, "choose", spying_choose)
    for mode in ("sample", "dataset"):
        trained.clear()
        scored.clear()
        cross_choices(samples, "knn", Objective(), mode=mode)  # type: ignore[arg-type]
        assert sorted(scored) == sorted(p.id for p in samples.problems)  # each scored once
        if mode == "dataset":  # the fold of a dataset holds none of its rows in training
            assert len(trained) == 8


def test_a_run_without_the_arms_or_samples_a_router_needs_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path / "one", arms=(("base", "none"),))
    with pytest.raises(UserError, match="two arms or more"):
        load_samples(tmp_path / "one")
    write_run(tmp_path / "few", limit=1)
    with pytest.raises(UserError, match="a router needs 10"):
        load_samples(tmp_path / "few")
    write_run(tmp_path / "ok")
    with pytest.raises(UserError, match="no sample has a measured energy cost"):
        load_samples(tmp_path / "ok", cost="energy")
    with pytest.raises(ConfigError, match="positive per-sample limit"):
        Objective("budget", "tokens")


def test_route_fit_saves_a_router_that_route_eval_scores(tmp_path: Path) -> None:
    write_run(tmp_path / "run")
    out = tmp_path / "router.json"
    runner = CliRunner()
    fitted = runner.invoke(app, ["route", "fit", str(tmp_path / "run"), "--out", str(out)])
    assert fitted.exit_code == 0, fitted.output
    assert "share of the oracle gap closed: 1.00" in fitted.output
    body = json.loads(out.read_text())
    assert body["format"] == 1 and body["runs"] == ["r1"] and body["method"] == "knn"
    assert load_router(out).fixed == "base"
    judged = runner.invoke(app, ["route", "eval", str(out), str(tmp_path / "run")])
    assert judged.exit_code == 0 and "gap closed: 1.00" in judged.output, judged.output
    write_run(tmp_path / "two", arms=ARMS[:2])
    refused = runner.invoke(app, ["route", "eval", str(out), str(tmp_path / "two")])
    assert refused.exit_code == 2 and "lacks the router's arms multi·act" in refused.output
    out.write_text("{not json")
    broken = runner.invoke(app, ["route", "eval", str(out), str(tmp_path / "run")])
    assert broken.exit_code == 2 and "not a router file" in broken.output


def test_the_oracle_of_constant_answers_is_no_bound_for_a_router() -> None:
    """Two arms that answer one label each to every sample of a binary dataset (right on half,
    on the other half): the oracle per sample scores 1.00, the best arm per dataset 0.50, and
    a router that keeps the best fixed arm closes none of either gap."""
    problems = [
        Problem(f"h{n}", "d", "classification", "Up?", AnswerFormat("label", ("yes", "no")))
        for n in range(6)
    ]
    yes = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    score = pd.DataFrame({"base": yes, "single·act": [1.0 - v for v in yes]})
    cost = pd.DataFrame({"base": [100.0] * 6, "single·act": [900.0] * 6})
    samples = routing.Samples(problems, score, cost, "m", ("r",))
    table, info = comparison(samples, ["base"] * 6, Objective())
    scores = dict(zip(table["policy"], table["score"], strict=True))
    assert scores["oracle"] == 1.0 and info["dataset_oracle"] == 0.5
    assert info["gap_closed"] == 0.0 and math.isnan(info["dataset_gap_closed"])
