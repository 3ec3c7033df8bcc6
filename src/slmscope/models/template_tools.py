"""Native tool calls on the embedded backend, in the model's own format.

Qwen2.5 and many small models were trained to call tools as their chat template writes them:
the tools listed in the system turn, a call as `<tool_call>{"name": ..., "arguments": {...}}
</tool_call>`, a result as a `tool` turn (the Hermes format). The embedded backend renders the
tools with the chat template from the GGUF metadata and reads the calls back here. A template
that does not write `<tool_call>` has no tool format this module knows: native mode is refused
for that model, in one line, before the run.

`tool_choice: "required"` (the `act` harness) is a grammar: the reply is one call to one of the
tools, its arguments holding that tool's required fields; `"none"` (a turn that may only
answer) is one too: text that opens no call, then `<final_answer>`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slmscope.models.base import Constraint, Message, ToolCall
from slmscope.models.json_grammar import COMMON_RULES, input_rule, literal

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(r"<tool_call>\s*(?P<body>.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?")


def has_tool_format(template: str) -> bool:
    """Whether a chat template renders tools and writes calls in the `<tool_call>` JSON
    format (a name and arguments; not the XML style some later templates use)."""
    return "tools" in template and CALL_OPEN in template and '"arguments"' in template


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The messages as a chat template expects them: a call's arguments as an object (our
    records keep the JSON text a server sends), a tool turn's content as text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = dict(message)
        calls = item.get("tool_calls")
        if calls:
            item["tool_calls"] = [_as_object(c) for c in calls]
            item["content"] = item.get("content") or ""
        out.append(item)
    return out


def _as_object(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function", {}))
    with contextlib.suppress(TypeError, json.JSONDecodeError):  # else left as the model wrote
        function["arguments"] = json.loads(function.get("arguments") or "{}")
    return {**call, "function": function}


def _call(body: Any, n: int) -> ToolCall | None:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return None
    if not {"arguments", "parameters"} & set(body):
        return None
    arguments = body.get("arguments", body.get("parameters"))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ToolCall(id=f"call_{n}", name=body["name"], arguments=arguments)


def _bare_calls(text: str) -> tuple[ToolCall, ...]:
    """A reply that is nothing but call objects, without the tags (Qwen2.5 writes them so
    after a first call), in a code fence or not; else none."""
    body = _FENCE.sub("", text).strip()
    calls: list[ToolCall] = []
    decoder = json.JSONDecoder()
    while body:
        try:
            value, end = decoder.raw_decode(body)
        except json.JSONDecodeError:
            if calls and body.startswith("{"):
                break  # a last object the token budget cut: the calls before it stand
            return ()  # other text after the calls: not a reply of calls alone
        call = _call(value, len(calls))
        if call is None:
            return ()
        calls.append(call)
        body = body[end:].strip()
    return tuple(calls)


def read_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """(the reply's text without its calls, the calls): `<tool_call>` blocks, or a reply that
    is nothing but call objects. A `<tool_call>` whose body is not a JSON object with a
    `name` and `arguments` stays in the text, where the protocol parser reports it as
    `tool_call_as_text`."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for found in _CALL.finditer(text):
        try:
            call = _call(json.loads(found["body"]), len(calls))
        except json.JSONDecodeError:
            continue
        if call is None:
            continue
        calls.append(call)
        kept.append(text[last : found.start()])
        last = found.end()
    kept.append(text[last:])
    if not calls:
        bare = _bare_calls(text)
        return ("", bare) if bare else (text.strip(), ())
    return "".join(kept).strip(), tuple(calls)


NO_CALL = Constraint(
    "native-none",
    'root ::= (free)? "<final_answer>" [^<]* "</final_answer>"\nfree ::= [^<{] [^<]*',
)  # `tool_choice: "none"`: text that opens no call, then the answer the native prompt asks


def required_call(tools: Sequence[Mapping[str, Any]]) -> Constraint:
    """The grammar of a reply that is one call to one of `tools` (OpenAI function specs)."""
    calls = []
    rules = []
    for n, spec in enumerate(tools):
        function = spec.get("function", {})
        head = literal('{"name": ' + json.dumps(function.get("name", "")) + ', "arguments": ')
        rules.append(f"call{n} ::= {head} ({input_rule(function.get('parameters', {}))}) " + '"}"')
        calls.append(f"call{n}")
    root = f"root ::= {literal(CALL_OPEN + chr(10))} ({' | '.join(calls)}) "
    root += literal("\n" + CALL_CLOSE)
    return Constraint("native-required", "\n".join([root, *rules]) + COMMON_RULES)
