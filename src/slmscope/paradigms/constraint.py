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

from slmscope.models.base import Constraint
from slmscope.models.json_grammar import COMMON_RULES, input_rule, literal
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
