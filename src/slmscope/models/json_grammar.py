"""Tool inputs as GBNF: a JSON object with a tool schema's required fields, kept cheap for
llama.cpp's grammar engine (no bounded repetitions, one optional space where JSON allows
whitespace). Used by the agents' turn grammar (paradigms/constraint.py) and by the embedded
backend's own tool calls (template_tools.py)."""

from __future__ import annotations

import json
import re
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


def _field_sets(schema: Mapping[str, Any]) -> list[list[str]]:
    """The fields an input object holds, in order: its required ones, or where the schema
    offers alternatives (`anyOf` of required sets), each of them."""
    properties = schema.get("properties", {})
    sets = [list(option["required"]) for option in schema.get("anyOf", []) if "required" in option]
    return sets or [list(schema.get("required") or list(properties)[:1])]


def input_rule(schema: Mapping[str, Any]) -> str:
    """A tool's input object: its required fields in order; where the schema offers
    alternatives (`anyOf` of required sets), any one of them."""
    properties = schema.get("properties", {})
    sets = _field_sets(schema)
    return " | ".join(f"({_object(fields, properties)})" for fields in sets)


# What the rules above write, as regexes over the text so far (whitespace as `sp` allows).
_STRING_SO_FAR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*'
_VALUE = {"integer": r"-?[0-9]+", "number": r"-?[0-9][0-9,]*(?:\.[0-9]+)?%?"}


def _field_regex(name: str, schema: Mapping[str, Any]) -> str:
    return (
        re.escape(json.dumps(name) + ":")
        + " ?"
        + _VALUE.get(schema.get("type", ""), _STRING_SO_FAR + '"')
    )


def open_text_inputs(schema: Mapping[str, Any]) -> list[str]:
    """Regexes for a tool's input object (as `input_rule` writes it) cut inside its last field,
    where that field is plain text: a string whose schema declares no `contentMediaType`
    (code declares one: a cut program cannot run, a cut query can). Closing there takes
    `"}` and no more."""
    properties = schema.get("properties", {})
    patterns = []
    for fields in _field_sets(schema):
        *before, last = fields
        spec = properties.get(last, {})
        if _value(spec) != "string" or "contentMediaType" in spec:
            continue
        head = "".join(_field_regex(name, properties.get(name, {})) + ", ?" for name in before)
        patterns.append(r"\{" + head + re.escape(json.dumps(last) + ":") + " ?" + _STRING_SO_FAR)
    return patterns
