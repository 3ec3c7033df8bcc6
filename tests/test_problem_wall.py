"""What the model sees never depends on the gold: two rows that differ only in gold give
byte-identical model input (messages, tool specs, grammar) under every paradigm, harness and
tool mode, for every shipped dataset config and the built-in suite; and every gold of the
shared FinBen files and the built-in suite can be written under its dataset's grammar."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_FINBEN, ScriptedBackend
from gbnf_check import accepts
from slmscope.models.base import GenerationConfig
from slmscope.paradigms import HARNESSES, PARADIGM_NAMES, get_paradigm
from slmscope.paradigms.constraint import agent_constraint
from slmscope.paradigms.single_agent import task_tools
from slmscope.tasks import FINBEN_DIR, SUITE, finben_config, finben_names, load_tasks
from slmscope.tasks.answer_format import ANSWER_KINDS, AnswerFormat
from slmscope.tasks.record import Task
from slmscope.tasks.scoring import score
from slmscope.tools.knowledge import KnowledgeSearch

ACT = '<think>t</think><action>{"tool": "calculator", "input": {"expression": "1+1"}}</action>'
HAND = '<think>t</think><action>{"tool": "quant_agent", "input": {"task": "add 1 and 1"}}</action>'
# The same replies for both rows: a tool call (a hand-off for the supervisor), an untagged
# reply, then answers; whatever the loop sends back must not depend on the gold either.
SCRIPT = [HAND, ACT, "it is 2", "<final_answer>2</final_answer>"] + [
    "<think>t</think><final_answer>2</final_answer>"
] * 12
MODES = ("tags", "native")


def model_input(task: Task, paradigm: str, harness: str, mode: str) -> list[Any]:
    """Every call the model gets on this task: messages, tool specs and grammar, as sent."""
    agent = get_paradigm(paradigm, harness=harness, mode=mode)  # type: ignore[arg-type]
    backend = ScriptedBackend(list(SCRIPT))
    asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
    return [
        [messages, json.dumps(options["tools"]), getattr(options["constraint"], "grammar", None)]
        for messages, options in zip(backend.calls, backend.options, strict=True)
    ]


def other_gold(task: Task) -> str:
    """A different gold of the same kind (another label, another number, other entities)."""
    others = [c for c in task.choices if c != task.gold]
    if others:
        return others[0]
    if task.task_type == "ner":
        return "Zed Holdings, ORG"
    return "yes" if task.gold != "yes" else "42"


def assert_gold_blind(task: Task) -> None:
    twin = dataclasses.replace(task, gold=other_gold(task))
    assert twin.problem == task.problem
    for paradigm in PARADIGM_NAMES:
        for harness in HARNESSES:
            for mode in MODES:
                seen = model_input(task, paradigm, harness, mode)
                assert seen == model_input(twin, paradigm, harness, mode), (
                    task.dataset, paradigm, harness, mode,
                )  # fmt: skip


@pytest.mark.parametrize("name", sorted(SUITE))
def test_builtin_rows_differing_only_in_gold_give_the_same_model_input(name: str) -> None:
    assert_gold_blind(SUITE[name]()[0])


def _synthetic_row(gold: str) -> dict[str, Any]:
    prompt = "Read this: Acme Corp in Oslo reported revenue of 1,784 against 1,495."
    return {
        "id": "row-1",
        "conversations": [{"from": "human", "value": prompt}, {"from": "agent", "value": gold}],
    }


@pytest.mark.parametrize("name", finben_names())
def test_every_shipped_config_is_gold_blind(name: str, tmp_path: Path) -> None:
    """Each FinBen config, on a row written in its shape with one gold, then another."""
    cfg = finben_config(name)
    kind_gold = {"ner": "Acme Corp, ORG", "qa": "1,784", "summarization": "Revenue rose."}
    gold = cfg.choices[0] if cfg.choices else kind_gold.get(cfg.task_type, "x")
    assert cfg.file is not None
    (tmp_path / cfg.file).write_text(json.dumps(_synthetic_row(gold)))
    task = load_tasks(f"finben:{name}", data_dir=tmp_path).tasks[0]
    assert task.problem.answer == cfg.answer_format  # the dataset's format, not the row's
    assert_gold_blind(task)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gold_a=st.one_of(st.sampled_from(["yes", "no", "Yes"]), st.text(min_size=1, max_size=30)),
    gold_b=st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(str), st.text()),
    kind=st.sampled_from([k for k in ANSWER_KINDS if k != "label"]),
)
def test_generated_qa_rows_are_gold_blind(gold_a: str, gold_b: str, kind: str) -> None:
    """Whatever the two golds are (numbers, yes/no, spans, noise), under any declared format."""
    fmt = AnswerFormat(kind)  # type: ignore[arg-type]
    row = dict(id="g", dataset="gen", task_type="qa", prompt="What is 1,784 - 1,495?")
    a = Task(**row, gold=gold_a, scorer="numeric_match", answer=fmt)  # type: ignore[arg-type]
    b = Task(**row, gold=gold_b, scorer="qa_f1", answer=fmt)  # type: ignore[arg-type]
    for paradigm in ("base", "single", "multi"):
        assert model_input(a, paradigm, "constrained", "tags") == model_input(
            b, paradigm, "constrained", "tags"
        )


def _all_rows() -> list[Task]:
    tasks = [t for make in SUITE.values() for t in make()]
    for path in sorted(SHARED_FINBEN.glob("*.jsonl")):
        if (FINBEN_DIR / f"{path.stem}.yaml").is_file():
            tasks += load_tasks(f"finben:{path.stem}", data_dir=SHARED_FINBEN, limit=10**6).tasks
    return tasks


def test_every_gold_can_be_written_under_its_datasets_grammar(smol_path: Path) -> None:
    """llama.cpp's own grammar engine accepts each gold as the final answer of a turn."""
    if not SHARED_FINBEN.is_dir():
        pytest.skip(f"no shared FinBen files at {SHARED_FINBEN}")
    knowledge, checked, refused = KnowledgeSearch(), 0, []
    grammars: dict[Any, str] = {}
    for task in _all_rows():
        problem = task.problem
        key = (problem.answer, tuple(task_tools(problem, knowledge)))
        if key not in grammars:
            tools = task_tools(problem, knowledge)
            grammars[key] = agent_constraint(tools, problem.answer, final_only=True).grammar
        text = f"<think>done</think><final_answer>{task.gold}</final_answer>"
        checked += 1
        if not accepts(grammars[key], text, smol_path):
            refused.append((task.dataset, task.id, task.gold))
    assert checked > 400 and refused == []


@pytest.mark.parametrize("harness", list(HARNESSES))
@pytest.mark.parametrize("paradigm", ["base", "single", "multi"])
def test_a_yes_gold_is_answerable_and_scored(paradigm: str, harness: str, smol_path: Path) -> None:
    task = Task(
        id="y", dataset="d", task_type="qa", prompt="Did revenue rise?", gold="yes",
        scorer="numeric_match",
    )  # fmt: skip
    agent = get_paradigm(paradigm, harness=harness)
    reply = "<think>it rose</think><final_answer>Yes</final_answer>"
    acts: list[str] = []  # under a harness that holds agents to act first: their actions
    if agent.harness is not None and agent.harness.acts_first():
        calc = '<think>t</think><action>{"tool": "calculator", "input": {"expression": "2-1"}}'
        hand = '<think>t</think><action>{"tool": "quant_agent", "input": {"task": "did it?"}}'
        acts = [hand + "</action>", calc + "</action>", reply] if paradigm == "multi" else []
        acts = acts or [calc + "</action>"]
    backend = ScriptedBackend([*acts, reply])
    trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
    assert trace.outcome == "ok" and score(task, trace.final_answer) == 1.0
    constraint = backend.options[-1]["constraint"]
    if constraint is not None:  # constrained: the grammar itself admits it
        assert accepts(constraint.grammar, reply, smol_path)


def test_results_made_with_the_old_prompts_still_load_and_new_cells_get_new_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer-format line changed the prompts: a run directory from before keeps its rows,
    readable as they were, and the same spec runs every cell again under new keys."""
    from slmscope import analysis
    from slmscope.models.catalog import CATALOG
    from slmscope.runs.spec import RunSpec
    from slmscope.runs.store import Store
    from sweeps import execute_spec

    tasks = SUITE["builtin:sentiment"]()[:2]
    spec = RunSpec(models=("scripted",), paradigms=("base", "single"), tasks=("x",))
    cards = {"scripted": CATALOG["smollm2-135m-instruct"]}
    reply = ["<think>t</think><final_answer>positive</final_answer>"] * 8
    store = Store(tmp_path / "run")
    monkeypatch.setattr("slmscope.runs.spec.PROMPT_VERSION", "2026-11-25.2")  # before
    old = execute_spec(spec, cards, tasks, store, backends={"scripted": ScriptedBackend(reply)})
    monkeypatch.undo()
    new = execute_spec(spec, cards, tasks, store, backends={"scripted": ScriptedBackend(reply)})
    assert (old.done, new.skipped, new.done) == (4, 0, 4)  # nothing of the old run is reused
    keys = [r.cell_key for r in store.results()]
    store.close()
    assert len(set(keys)) == 8
    frame = analysis.load(tmp_path / "run")
    assert len(frame) == 8 and frame["run_id"].nunique() == 2  # both runs' rows are read
    same = frame.groupby(["paradigm", "sample_id"])["score"].nunique()  # the same answers
    assert (same == 1).all() and len(same) == 4


def test_the_entity_grammar_takes_tokenized_names_and_refuses_the_copied_format(
    smol_path: Path,
) -> None:
    grammar = agent_constraint({}, AnswerFormat("entities"), final_only=True).grammar

    def final(text: str) -> str:
        return f"<think>t</think><final_answer>{text}</final_answer>"

    assert accepts(grammar, final("EVERGREEN SOLAR , INC, ORG\nOslo, LOC"), smol_path)
    assert not accepts(grammar, final("no entity, TYPE, per line"), smol_path)
    assert not accepts(grammar, final("entity, TYPE"), smol_path)
