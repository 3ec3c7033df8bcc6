"""Task files, the built-in suite and the scorers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slmscope.tasks import TaskFileError, UnknownTaskSet, load_tasks
from slmscope.tasks.builtin import SUITE
from slmscope.tasks.builtin.numbers import altman_z, credit_points
from slmscope.tasks.loaders.native import load_native
from slmscope.tasks.qa_metric import qa_exact, qa_f1
from slmscope.tasks.record import TASK_TYPES, Task
from slmscope.tasks.scoring import (
    entity_f1,
    label_accuracy,
    numeric_match,
    rouge1,
    rouge2,
    rouge_l,
    score,
)


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {
    "id": "a",
    "task_type": "sentiment",
    "prompt": "p",
    "gold": "positive",
    "choices": ["positive", "negative"],
}


def test_jsonl_loads_with_defaults(tmp_path: Path) -> None:
    tasks = load_native(write(tmp_path / "mine.jsonl", [GOOD, {**GOOD, "id": "b"}])).tasks
    assert [t.id for t in tasks] == ["a", "b"]
    assert tasks[0].dataset == "mine" and tasks[0].scorer == "label_accuracy"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"id": "b", "task_type": ', r"mine\.jsonl:2: not valid JSON"),
        (
            {"id": "b", "task_type": "sentiment", "prompt": "p"},
            r"mine\.jsonl:2: missing field 'gold'",
        ),
        ({**GOOD, "id": "b", "task_type": "poetry"}, r"mine\.jsonl:2: field 'task_type'"),
        ({**GOOD, "id": "b", "choices": [1, 2]}, r"mine\.jsonl:2: field 'choices'"),
        ({**GOOD}, r"mine\.jsonl:2: field 'id': duplicate"),
        ("[1, 2]", r"mine\.jsonl:2: expected an object"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path: Path, row: object, message: str) -> None:
    path = write(tmp_path / "mine.jsonl", [GOOD, row])
    with pytest.raises(TaskFileError, match=message):
        load_tasks(str(path))


def test_unknown_task_set_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskSet, match="builtin:sentiment"):
        load_tasks("nonsense")


def test_builtin_suite_is_deterministic_and_complete() -> None:
    first, second = load_tasks("builtin").tasks, load_tasks("builtin").tasks
    assert first == second
    assert {t.dataset for t in first} == set(SUITE)
    assert {t.task_type for t in first} == set(TASK_TYPES)  # one dataset per task type
    assert all(t.rule for t in first)
    assert len({(t.dataset, t.id) for t in first}) == len(first) == 8 * 20
    for task in first:
        if task.choices:
            assert task.gold in task.choices
    labels = {
        t.dataset: {t.gold for t in first if t.dataset == d}
        for d in SUITE
        for t in first
        if t.dataset == d and t.choices
    }
    assert all(len(v) >= 2 for v in labels.values())  # every label task has both classes


def _table_values(task: Task) -> dict[str, list[float]]:
    assert task.context
    rows = {}
    for line in task.context.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[\d,]+", cells[1]):
            rows[cells[0]] = [float(c.replace(",", "")) for c in cells[1:]]
    return rows


def test_table_qa_answers_follow_from_the_table() -> None:
    """Recompute every gold answer from the rendered table, independently of the generator."""
    assert len(SUITE["builtin:table_qa"]()) == 20
    for task in SUITE["builtin:table_qa"]():
        t = _table_values(task)
        r, c, n = t["Revenue"], t["Operating costs"], t["Net income"]
        q = task.prompt
        expected = (
            (r[2] - r[1]) / r[1] * 100
            if "percentage did revenue" in q
            else n[2] / r[2] * 100
            if "margin" in q
            else sum(c)
            if "total operating costs" in q
            else sum(r) / 3
            if "average revenue" in q
            else n[2] - n[0]
        )
        assert float(task.gold) == pytest.approx(expected, abs=0.006), task.id


def test_ner_gold_lists_every_entity_in_the_sentence() -> None:
    for task in SUITE["builtin:ner"]():
        sentence = task.prompt.split("Sentence: ", 1)[1]
        for line in task.gold.splitlines():
            entity, kind = line.rsplit(", ", 1)
            assert entity in sentence and kind in ("PER", "ORG", "LOC")


def test_sample_is_seeded_per_dataset() -> None:
    a = load_tasks("builtin", limit=3, seed=1).tasks
    assert a == load_tasks("builtin", limit=3, seed=1).tasks and len(a) == 8 * 3
    assert load_tasks("builtin", limit=3, seed=2).tasks != a
    assert len(load_tasks("builtin:ner").tasks) == 20


def _context_values(task: Task) -> dict[str, float]:
    assert task.context
    values = {}
    for line in task.context.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and re.fullmatch(r"-?[\d,.]+", value):
            values[name] = float(value.replace(",", ""))
    return values


def test_stock_movement_labels_follow_the_stated_rule() -> None:
    for task in SUITE["builtin:stock_movement"]():
        assert task.context
        closes = [
            float(line.split(",")[1])
            for line in task.context.splitlines()
            if re.fullmatch(r"\d,[\d.]+", line)
        ]
        change = closes[-1] / closes[0] - 1
        momentum = 1 if change > 0.01 else -1 if change < -0.01 else 0
        news = task.context.split("News:\n", 1)[1]
        good = sum(
            any(g in line for g in ("beats", "wins", "raises", "buyback"))
            for line in news.splitlines()
        )
        bad = sum(
            any(b in line for b in ("misses", "probe", "loses", "recalls"))
            for line in news.splitlines()
        )
        score_ = momentum + good - bad
        assert score_ != 0 and task.gold == ("Rise" if score_ > 0 else "Fall"), task.id


def test_credit_labels_follow_the_scorecard() -> None:
    for task in SUITE["builtin:credit_scoring"]():
        v = _context_values(task)
        points = credit_points(
            int(v["annual income"]),
            v["debt-to-income ratio"],
            int(v["years with current employer"]),
            int(v["late payments in the last two years"]),
        )
        assert task.gold == ("good" if points >= 4 else "bad")
        assert f"{points} points" in (task.rule or "")


def test_bankruptcy_labels_follow_altman_z() -> None:
    for task in SUITE["builtin:bankruptcy"]():
        v = list(_context_values(task).values())
        z = altman_z(*v)
        assert abs(z - 1.81) >= 0.1
        assert task.gold == ("yes" if z < 1.81 else "no"), task.id


def test_summaries_state_facts_from_the_source() -> None:
    for task in SUITE["builtin:summarization"]():
        numbers = re.findall(r"\d[\d,.]*\d|\d", task.gold)
        for number in numbers:
            assert number in task.prompt, (task.id, number)


SENT = Task(
    id="s",
    dataset="d",
    task_type="sentiment",
    prompt="",
    gold="positive",
    scorer="label_accuracy",
    choices=("positive", "negative", "neutral"),
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("positive", 1.0),
        ("Positive.", 1.0),
        ("  POSITIVE!! ", 1.0),
        ("The sentiment is positive.", 1.0),
        ("negative", 0.0),
        ("", 0.0),
        ("neutral, maybe positive", 0.0),  # the first label named counts
    ],
)
def test_label_accuracy(answer: str, expected: float) -> None:
    assert label_accuracy(answer, SENT) == expected


def qa(gold: str, prompt: str = "") -> Task:
    return Task(
        id="q", dataset="d", task_type="qa", prompt=prompt, gold=gold, scorer="numeric_match"
    )


@pytest.mark.parametrize(
    ("answer", "gold", "prompt", "expected"),
    [
        ("12.5", "12.50", "", 1.0),
        ("$1,234.5", "1234.5", "", 1.0),
        ("about 12.6", "12.5", "", 1.0),  # within 1%
        ("13", "12.5", "", 0.0),
        ("25%", "0.25", "", 1.0),
        ("0.25", "25", "in percent", 1.0),
        ("1.2 million", "1200000", "", 1.0),
        ("(3.5)", "-3.5", "", 1.0),
        ("Yes, it did.", "yes", "", 1.0),
        ("no", "yes", "", 0.0),
        ("no number here", "4", "", 0.0),
    ],
)
def test_numeric_match(answer: str, gold: str, prompt: str, expected: float) -> None:
    assert numeric_match(answer, qa(gold, prompt)) == expected


NER = Task(
    id="n",
    dataset="d",
    task_type="ner",
    prompt="",
    gold="Acme Corp, ORG\nOslo, LOC\nOslo, LOC",
    scorer="entity_f1",
)


def test_entity_f1_is_order_free_and_duplicate_aware() -> None:
    assert entity_f1("Oslo, LOC\nOslo, LOC\nacme corp, ORG", NER) == 1.0
    assert entity_f1("Oslo, LOC\nAcme Corp, ORG", NER) == pytest.approx(0.8)  # one Oslo missed
    assert entity_f1("Oslo, ORG", NER) == 0.0  # the type must match too
    assert entity_f1("- Acme Corp: ORG", NER) == pytest.approx(0.5)


def test_extraction_by_answer_format() -> None:
    def read(task: Task, text: str) -> str | None:
        return task.problem.answer.read(text)

    assert read(SENT, "I think it is Negative overall") == "negative"
    assert read(SENT, "no idea") is None
    assert read(qa("4"), "first 3, then the answer is 4.20") == "4.20"
    assert read(qa("yes"), "Yes, it rose by 5%") == "yes"  # yes/no read in either format
    assert read(qa("4"), "yes") == "yes"  # whatever the row's gold is
    assert read(qa("4"), "It rose from 3 to 4, so yes") == "4"  # a number said wins
    assert read(qa("no"), "**Yes**, it rose by 5%") == "yes"  # markdown before the yes
    spans = Task(id="s", dataset="d", task_type="qa", prompt="", gold="x", scorer="qa_f1")
    assert spans.problem.answer.kind == "text"  # a declared span scorer, not the gold
    assert read(NER, "Entities:\nOslo, LOC\nnothing else") == "Oslo, LOC"
    assert read(NER, "I found none") is None
    assert score(SENT, None) == 0.0


SUM = Task(
    id="s",
    dataset="d",
    task_type="summarization",
    prompt="",
    scorer="rouge_l",
    gold="revenue rose 5% to USD 300 million",
)


def test_rouge_scores_by_hand() -> None:
    answer = "revenue rose 5% to 300 million"  # 6 words, reference 7 (the '%' is dropped)
    # unigrams: all 6 answer words in the reference -> P 6/6, R 6/7
    assert rouge1(answer, SUM) == pytest.approx(2 * 1 * 6 / 7 / (1 + 6 / 7))
    # bigrams: answer 5, reference 6, shared 4 (all but "to 300")
    assert rouge2(answer, SUM) == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert rouge_l(answer, SUM) == pytest.approx(rouge1(answer, SUM))  # in-order subsequence
    assert rouge_l("million 300 to", SUM) < rouge1("million 300 to", SUM)
    assert rouge1("", SUM) == rouge2("profit", SUM) == 0.0


def test_numeric_scale_words_and_currency() -> None:
    assert numeric_match("$1.2bn", qa("1200000000")) == 1.0
    assert numeric_match("USD 3,400 thousand", qa("3400000")) == 1.0
    assert numeric_match("-4.5%", qa("-0.045")) == 1.0


@pytest.mark.parametrize(
    ("answer", "gold", "f1", "exact"),
    [
        ("The Company", "company", 1.0, 1.0),  # case and articles
        ("net sales increased", "net sales", 0.8, 0.0),  # a span, partly right
        ("2019; 2018", "['2018', '2019']", 1.0, 1.0),  # several values, any order
        ("2019", "['2018', '2019']", 0.5, 0.0),  # one of two values
        ("2019; 2018; 2017", "2018; 2019", 2 / 3, 0.0),  # an extra value costs
        ("12.5%", "12.5", 1.0, 1.0),  # percent sign
        ("0.125", "12.5%", 1.0, 1.0),  # a fraction for a percent
        ("(1,234)", "-1234", 1.0, 1.0),  # parentheses for a negative, thousands separator
        ("-5.2", "5.2", 0.0, 0.0),  # the sign matters
        ("$3.5 million", "3.5", 1.0, 1.0),  # scale and currency around the same value
        ("4.1", "3.5", 0.0, 0.0),
        ("", "3.5", 0.0, 0.0),
    ],
)
def test_tatqa_style_qa_metric(answer: str, gold: str, f1: float, exact: float) -> None:
    assert qa_f1(answer, gold) == pytest.approx(f1)
    assert qa_exact(answer, gold) == exact
