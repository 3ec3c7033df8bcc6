"""Native tool calls on the embedded backend, in the model's own chat-template format: the
calls read back, the messages as the template wants them, `required` as a grammar, and a real
Qwen2.5 run whose first turn under `act` is a native call on a real tool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import cached_model
from gbnf_check import accepts
from slmscope.models.base import GenerationConfig
from slmscope.models.llamacpp import LlamaCppBackend, chat_template
from slmscope.models.template_tools import (
    NO_CALL,
    has_tool_format,
    read_calls,
    required_call,
    template_messages,
)
from slmscope.paradigms import acts_of, get_paradigm
from slmscope.paradigms.agent_prompts import tool_specs
from slmscope.paradigms.single_agent import task_tools
from slmscope.tasks.builtin import SUITE
from slmscope.tools.knowledge import KnowledgeSearch

QWEN = "qwen2.5-coder-0.5b-instruct"
QA = SUITE["builtin:table_qa"]()[0]


def test_calls_are_read_in_the_hermes_format_and_the_rest_is_text() -> None:
    text = (
        'Let me compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": '
        '"1784 - 1495"}}\n</tool_call>'
    )
    said, calls = read_calls(text)
    assert said == "Let me compute." and len(calls) == 1
    assert calls[0].name == "calculator"
    assert json.loads(calls[0].arguments) == {"expression": "1784 - 1495"}
    broken = "<tool_call>\n{not json}\n</tool_call>"
    assert read_calls(broken) == (broken, ())  # left for the parser: tool_call_as_text
    two, calls = read_calls('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>'
                            '{"name": "b", "parameters": {"x": 1}}</tool_call>')  # fmt: skip
    assert two == "" and [c.name for c in calls] == ["a", "b"] and calls[1].arguments == '{"x": 1}'
    bare = '{"name": "calculator", "arguments": {"expression": "1+1"}}\n{"name": "python", '
    said, calls = read_calls(bare + '"arguments": {"code": "print(2)"}}')  # Qwen, untagged
    assert said == "" and [c.name for c in calls] == ["calculator", "python"]
    assert read_calls('{"answer": 289}') == ('{"answer": 289}', ())  # an object, not a call
    _, cut = read_calls(bare + '"arguments": {"co')  # the budget cut the second call
    assert [c.name for c in cut] == ["calculator"]
    answered = bare.split("\n")[0] + "\n<final_answer>289</final_answer>"
    assert read_calls(answered) == (answered, ())  # an answer after it: not calls alone
    assert read_calls("The answer is 289.") == ("The answer is 289.", ())


def test_messages_hand_the_template_arguments_as_objects() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    out = template_messages([{"role": "assistant", "content": None, "tool_calls": [call]}])
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert out[0]["content"] == ""


def test_required_is_a_grammar_of_one_call_to_a_real_tool(smol_path: Path) -> None:
    tools = task_tools(QA.problem, KnowledgeSearch())
    grammar = required_call(tool_specs(tools)).grammar
    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1 + 1"}}\n</tool_call>'
    assert accepts(grammar, call, smol_path)
    lookup = '<tool_call>\n{"name": "lookup", "arguments": {"query": "Revenue"}}\n</tool_call>'
    assert accepts(grammar, lookup, smol_path)
    assert not accepts(grammar, call.replace("calculator", "difference"), smol_path)
    assert not accepts(grammar, "<final_answer>289</final_answer>", smol_path)


def test_a_turn_that_may_only_answer_opens_no_call(smol_path: Path) -> None:
    grammar = NO_CALL.grammar
    assert accepts(grammar, "<final_answer>289</final_answer>", smol_path)
    assert accepts(grammar, "It is 289. <final_answer>289</final_answer>", smol_path)
    assert not accepts(grammar, '{"name": "calculator", "arguments": {}}', smol_path)
    assert not accepts(grammar, "<tool_call>", smol_path)


def test_which_templates_have_a_tool_format(smol_path: Path) -> None:
    assert not has_tool_format(chat_template(smol_path))  # SmolLM2: refused in native mode
    assert has_tool_format(chat_template(cached_model(QWEN)))


@pytest.mark.model
def test_qwen_calls_a_real_tool_natively_on_the_embedded_backend_under_act() -> None:
    backend = LlamaCppBackend(cached_model(QWEN), n_ctx=4096)
    agent = get_paradigm("single", harness="act", mode="native")
    trace = asyncio.run(agent.solve(QA.problem, backend, GenerationConfig()))
    first = trace.steps[0]
    assert first.tool in task_tools(QA.problem, KnowledgeSearch()), first
    assert first.error in (None, "tool_error") and "[tool call]" in first.output
    assert acts_of(trace).acted
    assert len(trace.steps) > 1  # the observation went back as a `tool` turn
    assert [m["role"] for m in trace.steps[1].messages][-2:] == ["assistant", "tool"]
