"""Built-in text tasks: sentiment, headline classification, NER, summarization.

Sentences and headlines are authored by the project; NER sentences and news paragraphs are
generated from templates, so their gold answers come from the slots the generator filled.
"""

from __future__ import annotations

import random

from slmscope.tasks.record import Task, TaskType

SENTIMENT_CHOICES = ("positive", "negative", "neutral")

# Authored sentences; the label is the author's reading of the news for the company's investors.
_SENTENCES: tuple[tuple[str, str], ...] = (
    (
        "Quarterly revenue rose 18% year on year and the company raised its full-year outlook.",
        "positive",
    ),
    (
        "The lender swung to a net loss after setting aside larger provisions for bad loans.",
        "negative",
    ),
    ("The company will publish its third-quarter results on 24 October.", "neutral"),
    ("Operating margin widened to 14.2% as input costs eased.", "positive"),
    (
        "The retailer cut 1,200 jobs and closed 40 stores after sales fell for a third year.",
        "negative",
    ),
    ("The board reappointed the current auditor for another term.", "neutral"),
    ("Shares slumped after the drug failed its late-stage trial.", "negative"),
    ("The shipping group won a ten-year contract worth EUR 300 million.", "positive"),
    ("The firm's headquarters are located in Helsinki.", "neutral"),
    ("Credit rating agencies downgraded the utility's debt to junk.", "negative"),
    ("Net profit doubled thanks to strong demand in Asia.", "positive"),
    ("The chief executive will present the strategy at the annual general meeting.", "neutral"),
    ("The bank was fined EUR 50 million for breaching money-laundering rules.", "negative"),
    ("Order intake hit a record and the backlog now covers two years of production.", "positive"),
    ("The company has around 3,400 employees in twelve countries.", "neutral"),
    ("Profit warnings from two suppliers sent the shares to a five-year low.", "negative"),
    ("The dividend was raised for the tenth consecutive year.", "positive"),
    ("Trading in the shares will move to the main market on Monday.", "neutral"),
    ("The airline cancelled its guidance as fuel costs surged.", "negative"),
    ("Cost savings of USD 120 million were delivered a year ahead of plan.", "positive"),
)

_SENTIMENT_PROMPT = (
    "What is the sentiment of the following financial sentence for the company's investors? "
    "Answer with one word: positive, negative or neutral.\nSentence: {text}"
)


def _authored(
    pairs: tuple[tuple[str, str], ...],
    *,
    prefix: str,
    dataset: str,
    task_type: TaskType,
    prompt: str,
    choices: tuple[str, ...],
    rule: str,
) -> list[Task]:
    """Label tasks from authored (text, label) pairs."""
    return [
        Task(
            id=f"{prefix}-{i:02d}",
            dataset=dataset,
            task_type=task_type,
            prompt=prompt.format(text=text),
            gold=label,
            scorer="label_accuracy",
            choices=choices,
            rule=rule,
        )
        for i, (text, label) in enumerate(pairs, 1)
    ]


def sentiment() -> list[Task]:
    return _authored(
        _SENTENCES,
        prefix="sent",
        dataset="builtin:sentiment",
        task_type="sentiment",
        prompt=_SENTIMENT_PROMPT,
        choices=SENTIMENT_CHOICES,
        rule="label given by the suite's author: good, bad or neither for investors",
    )


_PEOPLE = (
    "Maria Lindqvist",
    "David Okafor",
    "Chen Wei",
    "Laura Bianchi",
    "Samuel Adeyemi",
    "Hannah Berg",
)
_ORGS = (
    "Halvorsen Bank",
    "Pacific Rail Corp",
    "Meridian Capital",
    "Tern Insurance",
    "Greystone Holdings",
    "Sable Mining",
)
_PLACES = ("Oslo", "Lagos", "Singapore", "Milan", "Toronto", "Houston")
_TEMPLATES = (
    "{PER}, chief executive of {ORG}, said the {LOC} office would double its staff.",
    "{ORG} appointed {PER} as chief financial officer with effect from March.",
    "The agreement was signed in {LOC} by {PER} on behalf of {ORG}.",
    "{ORG} will move its headquarters from {LOC} to {LOC2}.",
    "Analysts at {ORG} expect {ORG2} to report higher earnings.",
    "{PER} told investors in {LOC} that {ORG} has no plans to sell its stake in {ORG2}.",
    "Shares of {ORG} rose after {PER} bought 20,000 of them.",
)

_NER_PROMPT = (
    "Extract the named entities from the sentence. Write one entity per line as "
    "'entity, TYPE' where TYPE is PER (person), ORG (organization) or LOC (location).\n"
    "Sentence: {text}"
)


def ner(seed: int = 11) -> list[Task]:
    rng = random.Random(seed)
    tasks: list[Task] = []
    for i in range(20):
        template = _TEMPLATES[i % len(_TEMPLATES)]
        orgs, places = rng.sample(_ORGS, 2), rng.sample(_PLACES, 2)
        slots = {
            "PER": rng.choice(_PEOPLE),
            "ORG": orgs[0],
            "ORG2": orgs[1],
            "LOC": places[0],
            "LOC2": places[1],
        }
        text = template.format(**slots)
        # Gold: entities in the order they appear in the sentence.
        spans = sorted(
            (text.index(v), v, k.rstrip("2")) for k, v in slots.items() if "{" + k + "}" in template
        )
        gold = "\n".join(f"{value}, {kind}" for _, value, kind in spans)
        tasks.append(
            Task(
                id=f"ner-{i + 1:02d}",
                dataset="builtin:ner",
                task_type="ner",
                prompt=_NER_PROMPT.format(text=text),
                gold=gold,
                scorer="entity_f1",
                rule="entities are the template slots the generator filled",
            )
        )
    return tasks


HEADLINE_CHOICES = ("Yes", "No")

# Authored gold-market headlines; label: does the headline report a rise in the gold price?
_HEADLINES: tuple[tuple[str, str], ...] = (
    ("Gold climbs to two-week high as dollar weakens", "Yes"),
    ("Gold slips as investors book profits after rally", "No"),
    ("Gold futures settle higher on safe-haven demand", "Yes"),
    ("Gold prices fall 1% as Treasury yields jump", "No"),
    ("Gold steady ahead of central bank decision", "No"),
    ("Bullion gains for third straight session", "Yes"),
    ("Gold extends losses on strong jobs data", "No"),
    ("Gold rises as inflation fears return", "Yes"),
    ("Central banks added 400 tonnes of gold to reserves last year", "No"),
    ("Gold edges up despite firmer dollar", "Yes"),
    ("Gold retreats from record as risk appetite improves", "No"),
    ("Gold jumps 2% after surprise rate cut", "Yes"),
    ("Gold little changed in thin holiday trade", "No"),
    ("Spot gold hits record high above USD 2,400", "Yes"),
    ("Gold sinks to lowest level since March", "No"),
    ("Gold ETF holdings decline for sixth month", "No"),
    ("Gold advances as geopolitical tensions flare", "Yes"),
    ("Gold tumbles as dollar index surges", "No"),
    ("Gold rebounds after early dip", "Yes"),
    ("Mining output in South Africa falls 5%", "No"),
)

_HEADLINE_PROMPT = (
    "Does the news headline say that the price of gold went up? Answer Yes or No.\nHeadline: {text}"
)


def headlines() -> list[Task]:
    return _authored(
        _HEADLINES,
        prefix="head",
        dataset="builtin:headlines",
        task_type="classification",
        prompt=_HEADLINE_PROMPT,
        choices=HEADLINE_CHOICES,
        rule="Yes when the headline reports a rise in the gold price, else No (authored headlines)",
    )


_SUMMARY_FIRMS = (
    "Nordhaven Foods",
    "Altamira Logistics",
    "Brightwell Energy",
    "Kestrel Software",
    "Orchid Textiles",
    "Halvorsen Bank",
    "Sable Mining",
)
_QUARTERS = ("first", "second", "third", "fourth")
_GUIDANCE = {
    "raised": "raised its forecast for the full year",
    "kept": "kept its full-year forecast unchanged",
    "cut": "cut its forecast for the full year",
}
_SUMMARY_PROMPT = (
    "Summarize the news in one sentence that gives the company, the quarter, the revenue "
    "change, the earnings per share and the outlook.\nNews: {text}"
)


def summarization(seed: int = 23) -> list[Task]:
    """News paragraphs and their one-sentence references, written from the same facts."""
    rng = random.Random(seed)
    tasks = []
    for i in range(20):
        firm, quarter = _SUMMARY_FIRMS[i % len(_SUMMARY_FIRMS)], rng.choice(_QUARTERS)
        revenue = rng.randrange(200, 5000)
        change = round(rng.uniform(-15, 25), 1)
        eps = round(rng.uniform(0.1, 4.0), 2)
        guidance = rng.choice(tuple(_GUIDANCE))
        direction = "rose" if change >= 0 else "fell"
        text = (
            f"{firm} said on Tuesday that revenue in the {quarter} quarter {direction} "
            f"{abs(change)}% from a year earlier to USD {revenue:,} million. Earnings per share "
            f"came in at USD {eps}. The company {_GUIDANCE[guidance]}. Its shares moved "
            f"{'higher' if change >= 0 else 'lower'} in early trading, and the chief executive "
            f"thanked employees for their work during the period."
        )
        reference = (
            f"{firm}'s {quarter}-quarter revenue {direction} {abs(change)}% to USD {revenue:,} "
            f"million, with earnings per share of USD {eps}, and it {guidance} its full-year "
            f"forecast."
        )
        tasks.append(
            Task(
                id=f"sum-{i + 1:02d}",
                dataset="builtin:summarization",
                task_type="summarization",
                prompt=_SUMMARY_PROMPT.format(text=text),
                gold=reference,
                scorer="rouge_l",
                rule="reference written by the generator from the same facts as the news paragraph",
            )
        )
    return tasks
