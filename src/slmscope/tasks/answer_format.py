"""What a dataset's final answers look like, declared once per dataset (never read off a row's
gold): the line that tells the model, the grammar rule that holds a constrained turn to it,
and how an answer is read from a tagged final answer or from a bare reply.

Kinds:
  label            one of the dataset's choices
  number           one number (a table's spelling: 1,784; -3.5%)
  number_or_yesno  a number, or yes / no (FinQA, ConvFinQA)
  text             text span(s) or value(s), several separated by '; ' (TAT-QA)
  entities         'entity, TYPE' lines
  summary          a few sentences
  free             short free text
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from slmscope.tasks.labels import entity_lines, match_label, normalize_label
from slmscope.tasks.numeric import parse_numbers

AnswerKind = Literal["label", "number", "number_or_yesno", "text", "entities", "summary", "free"]
ANSWER_KINDS: tuple[str, ...] = AnswerKind.__args__  # type: ignore[attr-defined]

_LINES: dict[str, str] = {
    "number": "The final answer is a number.",
    "number_or_yesno": "The final answer is a number, or yes or no.",
    "text": "The final answer is the text or value(s) asked for; separate several with '; '.",
    "entities": "The final answer lists one 'entity, TYPE' per line.",
    "summary": "The final answer is the summary itself, in a few sentences.",
    "free": "The final answer is short: just the answer, no explanation.",
}
# GBNF, self-contained (every helper rule starts with `ans-`): a table's number, free text
# up to the closing tag, an entity line.
_NUMBER = 'ans-number ::= "-"? "$"? [0-9] [0-9,]* ("." [0-9]+)? "%"?'
_TEXT = "ans-text ::= [^<]+"
# A name holds a comma only as tokenized text writes one (`EVERGREEN SOLAR , INC`): a bare
# ", " ends the name, so a copied "entity, TYPE, per line" cannot pass as an entity.
_ENTITY = 'ans-entity ::= [^,<\\n]+ (" , " [^,<\\n]+)* ", " ("PER" | "ORG" | "LOC")'
_YESNO = '"yes" | "no" | "Yes" | "No"'
_RULES: dict[str, str] = {
    "number": f"answer ::= ans-number\n{_NUMBER}",
    "number_or_yesno": f"answer ::= ans-number | {_YESNO}\n{_NUMBER}",
    "text": f"answer ::= ans-text\n{_TEXT}",
    "entities": f'answer ::= ans-entity ("\\n" ans-entity)*\n{_ENTITY}',
    "summary": f"answer ::= ans-text\n{_TEXT}",
    "free": f"answer ::= ans-text\n{_TEXT}",
}
_YES_NO = re.compile(r"\b(yes|no)\b")


@dataclass(frozen=True)
class AnswerFormat:
    kind: AnswerKind
    choices: tuple[str, ...] = ()  # the labels, for `label`

    def __post_init__(self) -> None:
        if self.kind not in ANSWER_KINDS:
            raise ValueError(f"unknown answer format {self.kind!r}; known: {ANSWER_KINDS}")
        if (self.kind == "label") != bool(self.choices):
            raise ValueError("an answer format has choices exactly when it is `label`")

    @property
    def numeric(self) -> bool:
        """Whether its answer is a number (a calculation may end in it)."""
        return self.kind in ("number", "number_or_yesno")

    def instruction(self) -> str:
        """The one line that tells the model what its final answer must look like."""
        if self.kind == "label":
            return "The final answer is exactly one of: " + ", ".join(self.choices) + "."
        return _LINES[self.kind]

    def grammar(self) -> str:
        """GBNF rules defining `answer` (and helpers named `ans-...`)."""
        if self.kind == "label":
            return "answer ::= " + " | ".join(
                json.dumps(c, ensure_ascii=False) for c in self.choices
            )
        return _RULES[self.kind]

    def read(self, text: str) -> str | None:
        """The answer a final answer (or any reply) gives in this format; None if none."""
        text = text.strip()
        if not text:
            return None
        if self.kind == "label":
            return match_label(text, self.choices)
        if self.kind == "entities":
            return "\n".join(entity_lines(text)) or None
        if self.kind in ("number", "number_or_yesno"):
            numbers = parse_numbers(text)
            said = _YES_NO.search(text.lower()) if self.kind == "number_or_yesno" else None
            lead = len(text) - len(text.lstrip(" *_`\"'(["))  # markdown or quotes before a yes
            if said is not None and (not numbers or said.start() == lead):
                return said.group(1)
            return numbers[-1].text if numbers else None
        return text

    def read_bare(self, line: str) -> str | None:
        """The answer a one-line untagged reply gives when it is nothing but an answer in this
        format (one of the choices, one number); None for anything looser."""
        reply = line.strip(" .*`\"'")
        if self.kind == "label":
            choice = match_label(reply, self.choices)
            return choice if choice and normalize_label(reply) == normalize_label(choice) else None
        if self.kind == "number_or_yesno" and normalize_label(reply) in ("yes", "no"):
            return normalize_label(reply)
        if self.kind in ("number", "number_or_yesno"):
            numbers = parse_numbers(reply)
            return reply if len(numbers) == 1 and len(reply) <= len(numbers[0].text) + 3 else None
        return None


def default_format(task_type: str, choices: tuple[str, ...], scorer: str = "") -> AnswerFormat:
    """A task type's format where a dataset declares none (a declared span scorer, never a
    row's gold, makes a QA dataset's answers text)."""
    if choices:
        return AnswerFormat("label", choices)
    if task_type == "qa" and scorer == "qa_f1":
        return AnswerFormat("text")
    kind: AnswerKind = {
        "ner": "entities",
        "qa": "number_or_yesno",
        "summarization": "summary",
    }.get(task_type, "free")  # type: ignore[assignment]
    return AnswerFormat(kind)


def format_named(
    kind: str | None, task_type: str, choices: tuple[str, ...], scorer: str = ""
) -> AnswerFormat:
    """The format a dataset declares (`answer:` in a config, a task file's column), else the
    default for its task type and declared scorer. ValueError names what is wrong."""
    if not kind:
        return default_format(task_type, choices, scorer)
    if kind not in ANSWER_KINDS:
        raise ValueError(f"{kind!r} is not one of {', '.join(ANSWER_KINDS)}")
    if kind == "label" and not choices:
        raise ValueError("'label' needs the dataset's choices")
    return AnswerFormat(kind, choices if kind == "label" else ())  # type: ignore[arg-type]
