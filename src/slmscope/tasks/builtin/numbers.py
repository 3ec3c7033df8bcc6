"""Built-in numeric tasks: table QA, stock movement, credit scoring, bankruptcy.

Every table, price series and applicant is generated with a fixed seed, and every gold answer
is computed by a stated rule from the generated figures, so a reader can check each one.
"""

from __future__ import annotations

import itertools
import random

from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tasks.record import Task

_COMPANIES = (
    "Nordhaven Foods",
    "Altamira Logistics",
    "Brightwell Energy",
    "Kestrel Software",
    "Orchid Textiles",
)
_YEARS = (2021, 2022, 2023)


def _table(rng: random.Random) -> dict[str, dict[int, float]]:
    """Revenue grows -15%..+25% a year; costs are 55-90% of revenue; whole USD millions."""
    revenue = {_YEARS[0]: float(rng.randrange(800, 5000))}
    for prev, year in itertools.pairwise(_YEARS):
        revenue[year] = float(round(revenue[prev] * rng.uniform(0.85, 1.25)))
    costs = {y: float(round(revenue[y] * rng.uniform(0.55, 0.9))) for y in _YEARS}
    net = {y: revenue[y] - costs[y] for y in _YEARS}
    return {"Revenue": revenue, "Operating costs": costs, "Net income": net}


def _markdown(company: str, table: dict[str, dict[int, float]]) -> str:
    head = "| (USD millions) | " + " | ".join(str(y) for y in _YEARS) + " |"
    rule = "|---|" + "---|" * len(_YEARS)
    rows = [
        f"| {name} | " + " | ".join(f"{v[y]:,.0f}" for y in _YEARS) + " |"
        for name, v in table.items()
    ]
    return f"{company}, selected figures\n" + "\n".join([head, rule, *rows])


def _questions(t: dict[str, dict[int, float]]) -> list[tuple[str, float, str]]:
    """(question, answer, rule) triples; answers computed from the table."""
    r, c, n = t["Revenue"], t["Operating costs"], t["Net income"]
    return [
        (
            "By what percentage did revenue change from 2022 to 2023? Answer in percent.",
            (r[2023] - r[2022]) / r[2022] * 100,
            "(Revenue 2023 - Revenue 2022) / Revenue 2022 * 100",
        ),
        (
            "What was the net profit margin in 2023, in percent?",
            n[2023] / r[2023] * 100,
            "Net income 2023 / Revenue 2023 * 100",
        ),
        (
            "What were total operating costs over 2021-2023, in USD millions?",
            c[2021] + c[2022] + c[2023],
            "sum of Operating costs over the three years",
        ),
        (
            "What was the average revenue over 2021-2023, in USD millions?",
            (r[2021] + r[2022] + r[2023]) / 3,
            "mean of Revenue over the three years",
        ),
        (
            "How much did net income change from 2021 to 2023, in USD millions?",
            n[2023] - n[2021],
            "Net income 2023 - Net income 2021",
        ),
    ]


def table_qa(seed: int = 7) -> list[Task]:
    rng = random.Random(seed)
    tasks: list[Task] = []
    for i in range(20):
        company = _COMPANIES[i % len(_COMPANIES)]
        table = _table(rng)
        question, answer, rule = rng.choice(_questions(table))
        tasks.append(
            Task(
                id=f"tqa-{i + 1:02d}",
                dataset="builtin:table_qa",
                task_type="qa",
                prompt=f"Answer the question using the table. Give the number only, rounded to two "
                f"decimals.\nQuestion: {question}",
                gold=f"{answer:.2f}",
                scorer="numeric_match",
                answer=AnswerFormat("number"),
                context=_markdown(company, table),
                rule=f"computed from the table: {rule}",
            )
        )
    return tasks


MOVEMENT_CHOICES = ("Rise", "Fall")
_GOOD_NEWS = (
    "beats earnings estimates",
    "wins a large government contract",
    "raises its dividend",
    "announces a share buyback",
)
_BAD_NEWS = (
    "misses earnings estimates",
    "faces a regulatory probe",
    "loses its chief financial officer",
    "recalls a flagship product",
)
_TICKERS = ("NRDH", "ALTL", "BRWE", "KSTR", "ORCT", "HLVB", "SBLM", "PCRC")
MOVEMENT_RULE = (
    "score = momentum + news, where momentum is +1 if the last close is more than 1% above "
    "the first close, -1 if more than 1% below, else 0, and news adds +1 per positive and -1 "
    "per negative headline; Rise if score > 0, Fall if score < 0 (ties are not generated)"
)


def stock_movement(seed: int = 31) -> list[Task]:
    rng = random.Random(seed)
    tasks: list[Task] = []
    while len(tasks) < 20:
        ticker = _TICKERS[len(tasks) % len(_TICKERS)]
        closes = [round(rng.uniform(20, 200), 2)]
        for _ in range(4):
            closes.append(round(closes[-1] * rng.uniform(0.97, 1.03), 2))
        change = closes[-1] / closes[0] - 1
        momentum = 1 if change > 0.01 else -1 if change < -0.01 else 0
        n_good, n_bad = rng.randrange(0, 3), rng.randrange(0, 3)
        score = momentum + n_good - n_bad
        if score == 0:
            continue  # the rule must decide every item
        news = [f"{ticker} {h}" for h in rng.sample(_GOOD_NEWS, n_good)]
        news += [f"{ticker} {h}" for h in rng.sample(_BAD_NEWS, n_bad)]
        rng.shuffle(news)
        table = "day,close\n" + "\n".join(f"{d},{c:.2f}" for d, c in enumerate(closes, 1))
        headlines = "\n".join(f"- {h}" for h in news) or "- (no news)"
        tasks.append(
            Task(
                id=f"move-{len(tasks) + 1:02d}",
                dataset="builtin:stock_movement",
                task_type="stock_movement",
                prompt=f"Given the last five closing prices of ${ticker} and today's news, "
                "will the stock rise or fall tomorrow? Answer Rise or Fall.",
                context=f"{table}\nNews:\n{headlines}",
                gold="Rise" if score > 0 else "Fall",
                scorer="label_accuracy",
                choices=MOVEMENT_CHOICES,
                rule=MOVEMENT_RULE,
            )
        )
    return tasks


CREDIT_CHOICES = ("good", "bad")
CREDIT_RULE = (
    "scorecard points: income >= 60,000 +2, 30,000-59,999 +1; debt-to-income < 0.30 +2, "
    "0.30-0.45 +1; years employed >= 3 +1; late payments 0 +2, 1-2 +0, 3+ -2; "
    "good if points >= 4, else bad"
)


# The scorecard is part of the task, shown to every paradigm: no tool should be the only way
# to learn the rule the labels follow.
CREDIT_PROMPT = (
    "Assess the loan applicant's credit risk with this scorecard. Annual income of 60,000 or "
    "more: 2 points; 30,000 to 59,999: 1. Debt-to-income ratio under 0.30: 2 points; 0.30 to "
    "0.45: 1. Three or more years with the current employer: 1 point. Late payments in the "
    "last two years: none, 2 points; 1 or 2, 0; 3 or more, -2. An applicant with 4 points or "
    "more is good, one with fewer is bad. Answer good or bad."
)


def credit_points(income: int, dti: float, years: int, late: int) -> int:
    points = 2 if income >= 60_000 else 1 if income >= 30_000 else 0
    points += 2 if dti < 0.30 else 1 if dti <= 0.45 else 0
    points += 1 if years >= 3 else 0
    points += 2 if late == 0 else 0 if late <= 2 else -2
    return points


def credit_scoring(seed: int = 37) -> list[Task]:
    rng = random.Random(seed)
    tasks = []
    for i in range(20):
        income = rng.randrange(15, 140) * 1000
        dti = round(rng.uniform(0.05, 0.7), 2)
        years = rng.randrange(0, 15)
        late = rng.choice((0, 0, 1, 2, 3, 5))
        amount = rng.randrange(2, 60) * 1000
        points = credit_points(income, dti, years, late)
        profile = (
            f"annual income: {income:,}\ndebt-to-income ratio: {dti:.2f}\n"
            f"years with current employer: {years}\nlate payments in the last two "
            f"years: {late}\nloan requested: {amount:,}"
        )
        tasks.append(
            Task(
                id=f"credit-{i + 1:02d}",
                dataset="builtin:credit_scoring",
                task_type="credit_scoring",
                prompt=CREDIT_PROMPT,
                context=f"Applicant\n{profile}",
                gold="good" if points >= 4 else "bad",
                scorer="label_accuracy",
                choices=CREDIT_CHOICES,
                rule=f"{CREDIT_RULE} (this applicant: {points} points)",
            )
        )
    return tasks


BANKRUPTCY_CHOICES = ("yes", "no")
BANKRUPTCY_RULE = (
    "Altman Z = 1.2*A + 1.4*B + 3.3*C + 0.6*D + 1.0*E with A = working capital / total "
    "assets, B = retained earnings / total assets, C = EBIT / total assets, D = market value "
    "of equity / total liabilities, E = sales / total assets; yes (distress) if Z < 1.81, "
    "else no; items within 0.1 of 1.81 are not generated"
)


def altman_z(a: float, b: float, c: float, d: float, e: float) -> float:
    return 1.2 * a + 1.4 * b + 3.3 * c + 0.6 * d + 1.0 * e


def bankruptcy(seed: int = 41) -> list[Task]:
    rng = random.Random(seed)
    tasks: list[Task] = []
    for number in itertools.count(1):
        if len(tasks) == 20:
            break
        ratios = (
            round(rng.uniform(-0.2, 0.4), 3),
            round(rng.uniform(-0.3, 0.5), 3),
            round(rng.uniform(-0.1, 0.2), 3),
            round(rng.uniform(0.1, 3.0), 3),
            round(rng.uniform(0.3, 2.0), 3),
        )
        z = altman_z(*ratios)
        if abs(z - 1.81) < 0.1:
            continue
        names = (
            "working capital / total assets",
            "retained earnings / total assets",
            "EBIT / total assets",
            "market value of equity / total liabilities",
            "sales / total assets",
        )
        table = "\n".join(f"{n}: {v}" for n, v in zip(names, ratios, strict=True))
        tasks.append(
            Task(
                id=f"bank-{len(tasks) + 1:02d}",
                dataset="builtin:bankruptcy",
                task_type="bankruptcy",
                prompt="From these financial ratios, is the company at risk of bankruptcy? "
                "Answer yes or no.",
                context=f"Company {number}\n{table}",
                gold="yes" if z < 1.81 else "no",
                scorer="label_accuracy",
                choices=BANKRUPTCY_CHOICES,
                rule=f"{BANKRUPTCY_RULE} (this company: Z = {z:.2f})",
            )
        )
    return tasks
