"""Tool inputs as GBNF: a JSON object with a tool schema's required fields, kept cheap for
llama.cpp's grammar engine (no bounded repetitions, one optional space where JSON allows
whitespace). Used by the agents' turn grammar (paradigms/constraint.py) and by the embedded
backend's own tool calls (template_tools.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

COMMON_RULES = r"""
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
