"""The `constrained` harness's grammar: what an agent turn may be, as GBNF.

A turn is a free thought, then exactly one action whose JSON names a real tool and fills that
tool's input schema, or a final answer in the dataset's answer format (whose rule the format
gives itself: tasks/answer_format.py). The last allowed turn admits only the final answer.

The shapes are kept cheap for llama.cpp's grammar engine: no bounded repetitions (`{0,200}`
expands into hundreds of rules and makes every token cost several times more), one optional
space where JSON allows whitespace, and character classes for free text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from slmscope.models.base import Constraint
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tools.base import Tool

_COMMON = r"""
sp ::= " "?
nl ::= [ \n]?
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" hex hex hex hex)
hex ::= [0-9a-fA-F]
integer ::= "-"? [0-9]+
number ::= "-"? [0-9] [0-9,]* ("." [0-9]+)? "%"?
"""


def literal(text: str) -> str:
    """A GBNF string literal."""
    return json.dumps(text, ensure_ascii=False)


def _value(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    return "string"


def _object(fields: list[str], properties: Mapping[str, Any]) -> str:
    parts = [
        f"{literal(json.dumps(name) + ':')} sp {_value(properties.get(name, {}))}"
        for name in fields
    ]
    return '"{" ' + ' "," sp '.join(parts) + ' "}"'


def input_rule(schema: Mapping[str, Any]) -> str:
    """A tool's input object: its required fields in order; where the schema offers
    alternatives (`anyOf` of required sets), any one of them."""
    properties = schema.get("properties", {})
    sets = [list(option["required"]) for option in schema.get("anyOf", []) if "required" in option]
    if not sets:
        sets = [list(schema.get("required") or list(properties)[:1])]
    return " | ".join(f"({_object(fields, properties)})" for fields in sets)


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
    return "\n".join(rules) + _COMMON


def agent_constraint(
    tools: Mapping[str, Tool],
    fmt: AnswerFormat,
    *,
    final_only: bool = False,
    act_only: bool = False,
) -> Constraint:
    """The grammar of one agent turn (built once per tool set, answer format and kind), with
    the closing grammar that ends a thought the token budget is about to cut. `final_only`
    admits only the final answer, `act_only` only an action."""
    key = tuple((name, json.dumps(tool.schema, sort_keys=True)) for name, tool in tools.items())
    answer = fmt.grammar()
    kind = "final" if final_only else "act" if act_only else "turn"
    return Constraint(
        name=f"agent-{kind}:{','.join(tools)}|{fmt.kind}:{','.join(fmt.choices)[:60]}",
        grammar=_grammar(key, answer, kind, False),
        closing=_grammar(key, answer, kind, True),
    )
