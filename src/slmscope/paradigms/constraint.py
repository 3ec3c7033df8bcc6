"""The `constrained` harness's grammar: what an agent turn may be, as GBNF.

A turn is a free thought, then exactly one action whose JSON names a real tool and fills that
tool's input schema, or a final answer in the dataset's answer format (whose rule the format
gives itself: tasks/answer_format.py). The last allowed turn admits only the final answer.

Two closings end a turn the token budget is about to cut: a thought still open closes and
the turn goes on to its action or answer; a tool's text input still open (a search query
that runs on) closes, and the action runs with the input as far as it got. Code is never
closed that way: a cut program cannot run, and the loop says it was cut (harness.py).

The shapes are kept cheap for llama.cpp's grammar engine: no bounded repetitions (`{0,200}`
expands into hundreds of rules and makes every token cost several times more), one optional
space where JSON allows whitespace, and character classes for free text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping

from slmscope.models.base import Closing, Constraint
from slmscope.models.json_grammar import COMMON_RULES, input_rule, literal, open_text_inputs
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tools.base import Tool


@functools.lru_cache(maxsize=64)
def _grammar(tools: tuple[tuple[str, str], ...], answer: str, kind: str, closing: bool) -> str:
    body = {"final": "final", "act": "action"}.get(kind, "(action | final)")
    final_only = kind == "final"
    rules = [
        f'root ::= "</think>" nl {body}'
        if closing
        else f'root ::= "<think>" thought "</think>" nl {body}',
        "thought ::= [^<]*",
        'final ::= "<final_answer>" answer "</final_answer>"',
        answer,
    ]
    if not final_only:
        calls = []
        for n, (name, schema_json) in enumerate(tools):
            schema = json.loads(schema_json)
            head = literal('{"tool":') + " sp " + literal(json.dumps(name) + ",") + " sp "
            calls.append(f"call{n}")
            rules.append(
                f"call{n} ::= {head}{literal(chr(34) + 'input' + chr(34) + ':')} sp "
                f'({input_rule(schema)}) "}}"'
            )
        rules.append('action ::= "<action>" (' + " | ".join(calls) + ') "</action>"')
    return "\n".join(rules) + COMMON_RULES


THOUGHT_RESERVE = 96  # tokens kept for the action or answer when a thought must close
INPUT_RESERVE = 16  # tokens kept to close a text input: '"}}</action>'
CLOSE_INPUT = 'root ::= "\\"}}</action>"'


@functools.lru_cache(maxsize=64)
def _open_input(tools: tuple[tuple[str, str], ...]) -> str:
    """A regex for a turn cut inside a tool's text input (none: the empty string)."""
    calls = [
        re.escape('{"tool":')
        + " ?"
        + re.escape(json.dumps(name) + ",")
        + " ?"
        + re.escape('"input":')
        + " ?"
        + pattern
        for name, schema_json in tools
        for pattern in open_text_inputs(json.loads(schema_json))
    ]
    return r"<think>[^<]*</think>[ \n]?<action>(?:" + "|".join(calls) + ")" if calls else ""


def agent_constraint(
    tools: Mapping[str, Tool],
    fmt: AnswerFormat,
    *,
    final_only: bool = False,
    act_only: bool = False,
) -> Constraint:
    """The grammar of one agent turn (built once per tool set, answer format and kind), with
    the closings that end a thought or a text input the token budget is about to cut. `final_only`
    admits only the final answer, `act_only` only an action."""
    key = tuple((name, json.dumps(tool.schema, sort_keys=True)) for name, tool in tools.items())
    answer = fmt.grammar()
    kind = "final" if final_only else "act" if act_only else "turn"
    closings = [
        Closing("thought", "<think>[^<]*", _grammar(key, answer, kind, True), THOUGHT_RESERVE)
    ]
    if kind != "final" and (opened := _open_input(key)):
        closings.append(Closing("input", opened, CLOSE_INPUT, INPUT_RESERVE))
    return Constraint(
        name=f"agent-{kind}:{','.join(tools)}|{fmt.kind}:{','.join(fmt.choices)[:60]}",
        grammar=_grammar(key, answer, kind, False),
        closings=tuple(closings),
    )
