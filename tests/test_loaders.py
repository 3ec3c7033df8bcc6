"""Loaders: FinBen files in both shapes, every file format, task configs, broken input."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_FINBEN
from slmscope.tasks import TaskFileError, UnknownTaskSet, finben_config, finben_names, load_tasks
from slmscope.tasks.labels import parse_entities
from slmscope.tasks.numeric import parse_numbers
from slmscope.tasks.record import Task

LOCAL_SETS = ("fpb", "fiqasa", "headlines", "ner", "finqa", "bigdata22", "cikm18")
needs_finben = pytest.mark.skipif(
    not SHARED_FINBEN.is_dir(), reason=f"{SHARED_FINBEN} is absent (FinBen samples)"
)


def test_twenty_finben_configs_ship_with_all_eight_task_types() -> None:
    names = finben_names()
    assert len(names) == 20 and set(LOCAL_SETS) <= set(names)
    types = {finben_config(n).task_type for n in names}
    assert len(types) == 8
    assert all(finben_config(n).hub for n in names)


@needs_finben
@pytest.mark.parametrize("name", LOCAL_SETS)
def test_shared_finben_sets_load_with_canonical_gold(name: str) -> None:
    loaded = load_tasks(f"finben:{name}", data_dir=SHARED_FINBEN)
    tasks = loaded.tasks
    assert len(tasks) == 50  # the config's limit: the study's 50 samples per dataset
    assert loaded.source.endswith(f"{name}.jsonl") and not loaded.bad_rows
    cfg = finben_config(name)
    for task in tasks:
        assert task.dataset == f"finben:{name}" and task.prompt.strip()
        if cfg.choices:
            assert task.gold in cfg.choices
        elif task.task_type == "ner":
            assert parse_entities(task.gold)
        else:
            assert parse_numbers(task.gold) or task.gold.lower() in ("yes", "no")


@needs_finben
def test_sampling_is_seeded_and_stratified_by_label() -> None:
    full = load_tasks("finben:fpb", data_dir=SHARED_FINBEN, limit=300).tasks
    a = load_tasks("finben:fpb", data_dir=SHARED_FINBEN, limit=50, seed=3).tasks
    b = load_tasks("finben:fpb", data_dir=SHARED_FINBEN, limit=50, seed=3).tasks
    c = load_tasks("finben:fpb", data_dir=SHARED_FINBEN, limit=50, seed=4).tasks
    assert [t.id for t in a] == [t.id for t in b] != [t.id for t in c]
    population = Counter(t.gold for t in full)
    drawn = Counter(t.gold for t in a)
    for label, count in population.items():
        assert abs(drawn[label] - 50 * count / len(full)) < 1  # largest-remainder quotas


@pytest.mark.parametrize("ref", ["builtin:sentiment", "builtin:stock_movement", "builtin:ner"])
def test_a_larger_limit_keeps_every_sample_of_a_smaller_one(ref: str) -> None:
    """Raising --limit on a run directory only adds samples (resume stays valid)."""
    full = load_tasks(ref).tasks
    population = Counter(t.gold for t in full) if full[0].choices else None
    previous: set[str] = set()
    for limit in range(1, len(full) + 1):
        drawn = load_tasks(ref, limit=limit, seed=5).tasks
        ids = {t.id for t in drawn}
        assert len(ids) == limit and previous <= ids
        previous = ids
        if population:
            counts = Counter(t.gold for t in drawn)
            for label, count in population.items():
                assert abs(counts[label] - limit * count / len(full)) < 1


@needs_finben
def test_missing_file_under_data_dir_is_an_error_not_the_hub(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match=r"fpb\.jsonl:0: file not found"):
        load_tasks("finben:fpb", data_dir=tmp_path)


def write_config(folder: Path, **keys: object) -> Path:
    path = folder / "mine.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in keys.items()) + "\n")
    return path


HUB_ROWS = [
    {
        "id": f"h{i}",
        "query": f"Sentiment of text {i}?",
        "answer": label,
        "choices": ["negative", "neutral", "positive"],
        "gold": idx,
        "text": f"text {i}",
    }
    for i, (label, idx) in enumerate([("positive", 2), ("negative", 0), ("neutral", 1)] * 4)
]


def test_hub_shape_rows_from_a_local_file(tmp_path: Path) -> None:
    (tmp_path / "hubshape.jsonl").write_text("\n".join(json.dumps(r) for r in HUB_ROWS))
    cfg = write_config(tmp_path, name="hubshape", task_type="sentiment")
    tasks = load_tasks(str(cfg)).tasks
    assert len(tasks) == 12 and tasks[0].choices == ("negative", "neutral", "positive")
    assert tasks[0].gold == "positive" and tasks[0].prompt == "Sentiment of text 0?"


FLAT = [
    {
        "qid": f"q{i}",
        "question": f"What is {i} + {i}?",
        "answer": str(2 * i),
        "table": f"| a | {i} |",
    }
    for i in range(1, 7)
]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_through_a_flat_field_mapping(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"flat.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in FLAT))
    elif fmt == "json":
        path.write_text(json.dumps({"data": FLAT}))
    elif fmt == "csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(FLAT[0]))
            writer.writeheader()
            writer.writerows(FLAT)
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(FLAT), path)
    cfg = write_config(
        tmp_path,
        name="flat",
        task_type="qa",
        file=path.name,
        shape="flat",
        fields={"id": "qid", "prompt": "question", "gold": "answer", "context": "table"},
        prompt_template="Use the table. {prompt}",
    )
    tasks = load_tasks(str(cfg)).tasks
    assert [t.id for t in tasks] == [f"q{i}" for i in range(1, 7)]
    assert tasks[2].gold == "6" and tasks[2].context == "| a | 3 |"
    assert tasks[2].prompt == "Use the table. What is 3 + 3?" and tasks[2].scorer == "numeric_match"


def test_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    rows = [
        json.dumps(FLAT[0]),
        json.dumps({**FLAT[1], "answer": " "}),
        "{oops",
        json.dumps(FLAT[2]),
    ]
    (tmp_path / "flat.jsonl").write_text("\n".join(rows))
    cfg = write_config(
        tmp_path,
        name="flat",
        task_type="qa",
        shape="flat",
        fields={"id": "qid", "prompt": "question", "gold": "answer"},
    )
    with pytest.raises(
        TaskFileError,
        match=r"flat\.jsonl:2: field 'answer': empty answer",
    ):
        load_tasks(str(cfg))
    loaded = load_tasks(str(cfg), skip_bad_rows=True)  # unparseable lines are skipped too
    unreadable = [b for b in loaded.bad_rows if b.line == 3]
    assert len(unreadable) == 1 and "not valid JSON" in unreadable[0].message


def test_skip_bad_rows_records_them_and_goes_on(tmp_path: Path) -> None:
    rows = [FLAT[0], {**FLAT[1], "answer": ""}, {"qid": "x"}, FLAT[2]]
    (tmp_path / "flat.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = write_config(
        tmp_path,
        name="flat",
        task_type="qa",
        shape="flat",
        fields={"id": "qid", "prompt": "question", "gold": "answer"},
    )
    loaded = load_tasks(str(cfg), skip_bad_rows=True)
    assert [t.id for t in loaded.tasks] == ["q1", "q3"]
    assert [(b.line, b.field) for b in loaded.bad_rows] == [(2, "answer"), (3, "question")]
    assert "empty answer" in loaded.bad_rows[0].message


def test_labels_outside_the_choices_refuse_the_dataset(tmp_path: Path) -> None:
    rows = [*HUB_ROWS[:3], {**HUB_ROWS[3], "answer": "bullish"}]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = write_config(
        tmp_path, name="s", task_type="sentiment", choices=["negative", "neutral", "positive"]
    )
    for skip in (False, True):
        with pytest.raises(
            TaskFileError,
            match=r"s\.jsonl:4: field 'answer': label 'bullish' "
            r"is not one of the declared choices",
        ):
            load_tasks(str(cfg), skip_bad_rows=skip)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntask_type: poetry\n", r"key 'task_type'"),
        ("name: x\ntask_type: qa\ncolour: red\n", r"unknown key\(s\) \['colour'\]"),
        ("name: x\n  task_type: [qa\n", r"mine\.yaml:\d+: not valid YAML"),
        ("task_type: qa\n", r"missing key 'name'"),
        ("name: x\ntask_type: qa\nscorer: vibes\n", r"key 'scorer'"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(TaskFileError, match=message):
        load_tasks(str(path))


def test_few_shot_examples_come_from_outside_the_sample(tmp_path: Path) -> None:
    (tmp_path / "fs.jsonl").write_text("\n".join(json.dumps(r) for r in HUB_ROWS))
    cfg = write_config(tmp_path, name="fs", task_type="sentiment", file="fs.jsonl", few_shot=2)
    tasks = load_tasks(str(cfg), limit=3, seed=1).tasks
    chosen = {t.id for t in tasks}
    for task in tasks:
        assert task.prompt.count("Example ") == 2 and task.prompt.endswith("?")
        for other in chosen:
            assert f"text {other[1:]}?\nAnswer" not in task.prompt


def test_hub_sets_fail_clearly_offline_without_data() -> None:
    with pytest.raises(TaskFileError, match=r"TheFinAI/en-fpb\[test\]:0: .*--data DIR"):
        load_tasks("finben:fpb")


def test_unknown_finben_set_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskSet, match="fiqasa"):
        load_tasks("finben:nope")


def test_tatqa_style_answers_are_scored_by_token_f1_and_rows_without_ids_get_stable_ids(
    tmp_path: Path,
) -> None:
    """TAT-QA golds are spans and several values as well as numbers: none refuses the set."""
    rows = [
        {"query": "Which segment grew most?", "answer": "Cloud services"},
        {"query": "Which years are shown?", "answer": "['2019', '2018']"},
        {"query": "What was the change?", "answer": "(1,234)"},
        {"query": "What share was it?", "answer": "12.5%"},
    ]
    (tmp_path / "tatqa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    first = load_tasks("finben:tatqa", data_dir=tmp_path).tasks
    assert [t.scorer for t in first] == ["qa_f1", "qa_f1", "numeric_match", "numeric_match"]
    again = load_tasks("finben:tatqa", data_dir=tmp_path).tasks
    assert [t.id for t in first] == [t.id for t in again]  # stable across loads
    assert len({t.id for t in first}) == 4 and all(t.id.startswith("row-") for t in first)
    span, years, change, share = first
    assert score(span, "<final_answer>cloud services</final_answer>") == 1.0
    assert score(years, "2018; 2019") == 1.0 and score(years, "2019") == 0.5
    assert score(change, "-1234") == 1.0 and score(share, "12.5") == 1.0


def score(task: object, reply: str) -> float:
    from slmscope.paradigms.protocol import final_answer_tag
    from slmscope.tasks.scoring import score as score_answer

    assert isinstance(task, Task)
    answer = task.problem.answer.read(final_answer_tag(reply) or reply)
    return score_answer(task, answer)
