"""The tag protocol of the reference study, parsed in one place.

A model turn may hold <think>...</think>, then either <action>{"tool": NAME, "input": {...}}
</action> or <final_answer>...</final_answer>. The parser is tolerant of what small models
really emit (code fences around the JSON, text after it, single-quoted Python-style dicts, a
missing closing tag, an <observation> the model invented) and exact about what it accepts:
the action must be one object with a string "tool" and an object "input". Every rejection is
a ProtocolError with a typed reason.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Reason = Literal[
    "no_action_or_answer",
    "action_not_json",
    "action_not_object",
    "action_missing_tool",
    "action_bad_input",
    "empty_final_answer",
]
TAGS = ("think", "action", "observation", "final_answer")
_OPEN = {tag: re.compile(rf"<\s*{tag}\s*>", re.IGNORECASE) for tag in TAGS}
_CLOSE = {tag: re.compile(rf"<\s*/\s*{tag}\s*>", re.IGNORECASE) for tag in TAGS}
_ANY_OPEN = re.compile(r"<\s*(?:" + "|".join(TAGS) + r")\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```\s*$")


class ProtocolError(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Action:
    tool: str
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    think: str | None
    action: Action | None
    final_answer: str | None


def _section(text: str, tag: str) -> str | None:
    """Content of the first <tag>: up to its closing tag, else up to the next tag or the end."""
    opened = _OPEN[tag].search(text)
    if opened is None:
        return None
    rest = text[opened.end() :]
    closed = _CLOSE[tag].search(rest)
    if closed is not None:
        return rest[: closed.start()].strip()
    following = _ANY_OPEN.search(rest)
    return (rest[: following.start()] if following else rest).strip()


def final_answer_tag(text: str) -> str | None:
    """The content of the last <final_answer> tag (a missing closing tag is tolerated)."""
    matches = list(_OPEN["final_answer"].finditer(text))
    if not matches:
        return None
    return _section(text[matches[-1].start() :], "final_answer")


def _json_object(raw: str) -> Any:
    """The first JSON object in raw: fences stripped, trailing text ignored, single quotes
    (a Python-style dict) accepted."""
    body = _FENCE.sub("", raw.strip()).strip()
    start = body.find("{")
    if start < 0:
        try:
            return json.loads(body)  # valid JSON but no object: the caller says so
        except json.JSONDecodeError:
            raise ProtocolError("action_not_json", f"no JSON object in {raw[:80]!r}") from None
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
        return value
    except json.JSONDecodeError:
        pass
    depth, end = 0, -1
    for i, ch in enumerate(body[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            end = i + 1
            break
    try:
        return ast.literal_eval(body[start:end] if end > 0 else body[start:])
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise ProtocolError("action_not_json", f"not a JSON object: {raw[:80]!r}") from None


def parse_action(raw: str) -> Action:
    value = _json_object(raw)
    if not isinstance(value, dict):
        raise ProtocolError("action_not_object", f"expected an object, got {type(value).__name__}")
    tool = value.get("tool")
    if not isinstance(tool, str) or not tool.strip():
        raise ProtocolError("action_missing_tool", 'the action needs a string "tool"')
    args = value.get("input", {})
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise ProtocolError("action_bad_input", '"input" must be an object')
    return Action(tool=tool.strip(), input=args)


def parse_reply(text: str) -> Reply:
    """One model turn, read by the protocol; ProtocolError (typed) when it holds no usable step.

    Anything from an <observation> the model wrote itself onward is ignored: observations come
    from tools. A final answer wins over an action in the same turn."""
    invented = _OPEN["observation"].search(text)
    if invented is not None:
        text = text[: invented.start()]
    think = _section(text, "think")
    final = final_answer_tag(text)
    if final is not None:
        if not final:
            raise ProtocolError("empty_final_answer", "<final_answer> is empty")
        return Reply(think=think, action=None, final_answer=final)
    raw_action = _section(text, "action")
    if raw_action is None:
        raise ProtocolError("no_action_or_answer", "neither <action> nor <final_answer>")
    return Reply(think=think, action=parse_action(raw_action), final_answer=None)
