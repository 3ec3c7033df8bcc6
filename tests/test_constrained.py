"""The constrained harness on real models: every turn parses, every action names a real tool,
a label task's answer is one of its choices; a real server obeys the grammar; and a text input
the budget is about to cut is closed, code is not."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest

from conftest import SMOL, ScriptedBackend, cached_model
from gbnf_check import accepts
from slmscope.models import resolve
from slmscope.models.base import Completion, Constraint, ConstraintUnsupported, GenerationConfig
from slmscope.models.grammar import GrammarError, LazyGrammar
from slmscope.models.llamacpp import LlamaCppBackend, load_llama
from slmscope.models.openai_compat import OpenAIBackend
from slmscope.paradigms.constraint import agent_constraint
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent
from slmscope.paradigms.protocol import ProtocolError, parse_reply
from slmscope.paradigms.single_agent import SingleAgent, task_tools
from slmscope.runs.spec import RunSpec
from slmscope.runs.store import Store
from slmscope.tasks.answer_format import AnswerFormat
from slmscope.tasks.builtin import SUITE
from slmscope.tools.calculator import Calculator
from slmscope.tools.knowledge import KnowledgeSearch
from slmscope.tools.lookup import Lookup
from slmscope.tools.python_sandbox import PythonSandbox
from sweeps import execute_spec

PROTOCOL_FAILURES = {"no_action_or_answer", "action_not_json", "action_not_object"}
PROTOCOL_FAILURES |= {"action_missing_tool", "action_bad_input", "empty_final_answer"}


def test_every_grammar_parses_in_llama_cpp(smol_path: Path) -> None:
    llm = load_llama(smol_path, n_ctx=2048, n_threads=None)
    knowledge = KnowledgeSearch()
    for make in SUITE.values():
        task = make()[0]
        for final_only in (False, True):
            constraint = agent_constraint(
                task_tools(task.problem, knowledge), task.problem.answer, final_only=final_only
            )
            LazyGrammar(llm, constraint.grammar, greedy=True).close()
    with pytest.raises(GrammarError):
        LazyGrammar(llm, "root ::= undefined-rule", greedy=True)


def test_the_last_turn_admits_only_a_final_answer() -> None:
    task = SUITE["builtin:sentiment"]()[0]
    backend = ScriptedBackend(["<think>x</think><final_answer>positive</final_answer>"])
    agent = SingleAgent(AgentLimits(max_turns=1), harness="constrained")
    trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
    assert trace.outcome == "ok"
    (constraint,) = [o["constraint"] for o in backend.options]
    assert constraint.name.startswith("agent-final:") and "<action>" not in constraint.grammar


def test_after_a_repeated_action_the_grammar_admits_only_a_final_answer() -> None:
    task = SUITE["builtin:table_qa"]()[0]
    call = '{"tool": "calculator", "input": {"expression": "1+1"}}'
    again = f"<think>x</think><action>{call}</action>"
    backend = ScriptedBackend([again, again, "<think>x</think><final_answer>2</final_answer>"])
    agent = SingleAgent(harness="constrained")
    trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
    assert trace.outcome == "ok" and trace.steps[1].error == "repeated_action"
    kinds = [o["constraint"].name.split(":")[0] for o in backend.options]
    assert kinds == ["agent-turn", "agent-turn", "agent-final"]


@pytest.mark.model
@pytest.mark.parametrize("model", [SMOL, "qwen2.5-coder-0.5b-instruct"])
@pytest.mark.parametrize("paradigm", ["single", "multi"])
def test_constrained_turns_always_parse_on_a_real_model(model: str, paradigm: str) -> None:
    backend = LlamaCppBackend(cached_model(model), n_ctx=4096)
    agent = (
        SingleAgent(harness="constrained")
        if paradigm == "single"
        else MultiAgent(harness="constrained")
    )
    tasks = [SUITE[name]()[0] for name in ("builtin:sentiment", "builtin:table_qa")]
    for task in tasks:
        trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig(max_tokens=200)))
        known = set(task_tools(task.problem, KnowledgeSearch()))
        known |= {"knowledge_agent", "nlp_agent", "quant_agent"}
        for step in trace.steps:
            assert step.error not in PROTOCOL_FAILURES, (step.error, step.output)
            parsed = parse_reply(step.output)  # the recorded turn reads by the tag protocol
            if parsed.action is not None:
                assert parsed.action.tool in known, step.output
        if task.choices and trace.outcome == "ok":
            assert trace.final_answer in task.choices
        assert trace.outcome not in ("no_final_answer", "malformed_action"), trace.error


def test_a_real_server_obeys_the_grammar(llama_server: str) -> None:
    backend = OpenAIBackend(llama_server, SMOL, stream=False)
    task = SUITE["builtin:sentiment"]()[0]
    final = Constraint(
        "answer", 'root ::= "<final_answer>" ("positive" | "negative") "</final_answer>"'
    )

    async def ask(constraint: Constraint, max_tokens: int) -> str:
        reply = await backend.chat(
            [{"role": "user", "content": "Is 'profits soared' positive or negative?"}],
            GenerationConfig(max_tokens=max_tokens, constraint=constraint),
        )
        return reply.text

    async def both() -> tuple[str, str]:
        try:
            turn = agent_constraint({}, task.problem.answer, final_only=True)
            return await ask(final, 32), await ask(turn, 48)
        finally:
            await backend.aclose()

    answer, turn = asyncio.run(both())
    assert backend.grammar_style == "grammar"  # llama-cpp-python's server takes `grammar`
    assert parse_reply(answer).final_answer in ("positive", "negative"), answer
    # The agent grammar (a server cannot close a thought early: the text may be cut, but
    # never leaves the grammar).
    assert turn.startswith("<think>") and "<" not in turn[len("<think>") :].split("</think>")[0]


def test_a_server_that_ignores_grammars_is_refused_before_running(
    llama_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A server where no grammar field works (here: every field renamed away) is refused
    before any sample runs."""
    monkeypatch.setattr("slmscope.models.openai_compat.GRAMMAR_STYLES", ("no_such_field",))
    spec = RunSpec(
        models=(SMOL,),
        paradigms=("base", "single"),
        tasks=("builtin:sentiment",),
        harnesses=("constrained",),
        base_url=llama_server,
    )
    store = Store(tmp_path / "run")
    cards = {SMOL: resolve(SMOL, base_url=llama_server)}
    tasks = SUITE["builtin:sentiment"]()[:1]
    with pytest.raises(ConstraintUnsupported, match="obeys none of the grammar fields"):
        execute_spec(spec, cards, tasks, store)
    assert store.results() == [] and store.runs() == []


def test_a_text_input_the_budget_is_about_to_cut_is_closed_and_code_is_not(
    smol_path: Path,
) -> None:
    """The real SmolLM2, asked to search for a counting sequence, counts on inside its query
    until the budget: the input closing ends the query and the action parses. Without that
    closing the same reply is cut mid-JSON; a program (code) is never closed that way."""
    backend = LlamaCppBackend(smol_path, n_ctx=2048)
    numbers = ", ".join(str(i) for i in range(1, 30))
    messages = [
        {
            "role": "system",
            "content": "You answer with one tool call. Tools: knowledge_search (input: query).",
        },
        {
            "role": "user",
            "content": f"Search the knowledge base for this exact text, copied in full: {numbers}",
        },
    ]
    fmt = AnswerFormat("free")
    search = agent_constraint({"knowledge_search": KnowledgeSearch()}, fmt, act_only=True)
    without = dataclasses.replace(search, closings=search.closings[:1])  # the thought's only
    code = agent_constraint({"python": PythonSandbox()}, fmt, act_only=True)
    assert [c.name for c in search.closings] == ["thought", "input"]
    assert [c.name for c in code.closings] == ["thought"]

    async def ask(constraint: Constraint) -> Completion:
        gen = GenerationConfig(max_tokens=160, temperature=0.0, constraint=constraint)
        return await backend.chat(messages, gen)

    closed, cut = asyncio.run(ask(search)), asyncio.run(ask(without))
    assert closed.raw_usage.get("grammar_closed") == "input", closed.text
    assert closed.finish_reason != "length" and closed.usage.completion_tokens < 160
    action = parse_reply(closed.text).action
    assert action is not None and action.tool == "knowledge_search"
    assert action.input["query"].startswith("1,2,3"), action.input  # as far as it got
    assert cut.finish_reason == "length" and cut.raw_usage.get("grammar_closed") == "thought"
    with pytest.raises(ProtocolError):
        parse_reply(cut.text)  # cut inside its JSON


def test_each_input_closing_the_regex_admits_ends_in_a_turn_the_grammar_accepts(
    smol_path: Path,
) -> None:
    """Where the closing's regex says a turn is inside a text input, the closing grammar's
    `"}}</action>` completes it to a turn the full grammar accepts; inside code, inside a
    first field, or after a lone backslash, the regex does not match."""
    tools = {
        "knowledge_search": KnowledgeSearch(),
        "lookup": Lookup("| | 2023 |\n|---|---|\n| Revenue | 5 |"),
        "python": PythonSandbox(),
        "calculator": Calculator(),
    }
    constraint = agent_constraint(tools, AnswerFormat("number"))
    opened = re.compile(constraint.closings[1].opened, re.DOTALL)
    head = "<think>t</think>\n<action>"
    inside = [
        '{"tool": "knowledge_search", "input": {"query": "gross margin, \\"adjusted\\" 2023',
        '{"tool":"calculator","input":{"expression":"1,784 - 1,495 + \\u00e9',
        '{"tool": "lookup", "input": {"row": "Revenue", "column": "20',
        '{"tool": "lookup", "input": {"query": "',
    ]
    for text in inside:
        assert opened.fullmatch(head + text), text
        assert accepts(constraint.grammar, head + text + '"}}</action>', smol_path), text
    outside = [
        '{"tool": "python", "input": {"code": "print(1',
        '{"tool": "lookup", "input": {"row": "Reven',
        '{"tool": "calculator", "input": {"expression": "1 + \\',
        '{"tool": "calculator", "input": {"expression": "1"}}',
    ]
    for text in outside:
        assert not opened.fullmatch(head + text), text
