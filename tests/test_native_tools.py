"""Native tool calling (OpenAI `tools=`): control flow with scripted replies, the real
llama-cpp-python server answering with real tool calls, and the clear refusal of the embedded
backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMOL, ScriptedBackend, tool_reply
from slmscope.analysis.tables import load, load_steps
from slmscope.cli import app
from slmscope.models.base import GenerationConfig, ToolsUnsupported
from slmscope.models.llamacpp import LlamaCppBackend
from slmscope.models.openai_compat import OpenAIBackend
from slmscope.paradigms.loop_records import AgentLimits
from slmscope.paradigms.multi_agent import MultiAgent
from slmscope.paradigms.protocol import ProtocolError, parse_native
from slmscope.paradigms.react import react, tool_specs
from slmscope.paradigms.single_agent import SingleAgent
from slmscope.paradigms.trace import Step, Trace
from slmscope.tasks.builtin import SUITE
from slmscope.tools.calculator import Calculator

QA = SUITE["builtin:table_qa"]()[0]


def solve(paradigm: object, *replies: object) -> tuple[Trace, ScriptedBackend]:
    backend = ScriptedBackend(list(replies))  # type: ignore[arg-type]
    trace = asyncio.run(paradigm.solve(QA.problem, backend, GenerationConfig()))  # type: ignore[attr-defined]
    return trace, backend


def test_a_native_tool_call_is_run_and_answered_with_a_tool_message() -> None:
    trace, backend = solve(
        SingleAgent(mode="native"),
        tool_reply(("calculator", '{"expression": "growth(100, 125)"}')),
        f"The answer is <final_answer>{QA.gold}</final_answer>",
    )
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    first = trace.steps[0]
    assert (first.tool, first.observation, first.error) == ("calculator", "25", None)
    assert "[tool call] calculator" in first.output  # the trace shows what the model asked
    # The server is given the tools as function specs, and no tag stop sequence.
    sent = backend.options[0]
    assert sent["stop"] is None
    assert {t["function"]["name"] for t in sent["tools"]} == {
        "calculator",
        "python",
        "knowledge_search",
        "lookup",
    }
    assert "<action>" not in backend.calls[0][0]["content"]  # no tag protocol in the prompt
    # The model's call goes back as an assistant tool_calls message, the result as a tool one.
    assistant, tool = backend.calls[1][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "calculator"
    assert tool == {"role": "tool", "tool_call_id": "call_0", "content": "25"}


def test_a_plain_message_is_the_final_answer_in_native_mode() -> None:
    trace, _ = solve(SingleAgent(mode="native", harness="constrained"), f"{QA.gold}")
    assert trace.outcome == "ok" and trace.final_answer == QA.gold


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (tool_reply(("calculator", "{not json at all")), "action_not_json"),
        (tool_reply(("calculator", "[1, 2]")), "action_bad_input"),
        (tool_reply(("", '{"expression": "1"}')), "action_missing_tool"),
        ('<tool_call>{"name": "calculator"}</tool_call>', "tool_call_as_text"),
        ("", "no_action_or_answer"),
    ],
)
def test_bad_native_turns_are_typed_and_told_to_the_model(reply: object, reason: str) -> None:
    for harness, told in (("strict", "Not understood"), ("repair", "")):
        trace, backend = solve(
            SingleAgent(mode="native", harness=harness),  # type: ignore[arg-type]
            reply,
            f"<final_answer>{QA.gold}</final_answer>",
        )
        assert trace.outcome == "ok"  # the model recovered on the next turn
        assert trace.steps[0].error == reason and trace.steps[1].repair == (harness == "repair")
        feedback = backend.calls[1][-1]
        assert feedback["role"] in ("tool", "user") and told in feedback["content"]
        assert "<action>" not in feedback["content"]  # native mode is never told to use tags


def test_constrained_native_turns_use_strict_schemas_and_answer_only_turns_no_tools() -> None:
    again = tool_reply(("calculator", '{"expression": "1+1"}'))
    agent = SingleAgent(mode="native", harness="constrained")
    trace, backend = solve(agent, again, again, tool_reply(text=QA.gold))
    assert trace.outcome == "ok" and trace.steps[1].error == "repeated_action"
    assert [g.tool_choice for g in backend.gens] == ["auto", "auto", "none"]
    assert all(g.constraint is None for g in backend.gens)  # servers refuse grammar + tools
    function = backend.gens[0].tools[0]["function"]
    assert function["strict"] and function["parameters"]["additionalProperties"] is False
    # Under repair the last turn is only asked for, not enforced; under strict neither.
    for harness in ("repair", "strict"):
        limits = AgentLimits(max_turns=2)
        agent = SingleAgent(limits, mode="native", harness=harness)
        _, backend = solve(agent, *[again] * 4)
        assert {g.tool_choice for g in backend.gens} == {"auto"}
        assert "strict" not in backend.gens[0].tools[0]["function"]


def test_only_the_first_of_several_calls_runs() -> None:
    trace, backend = solve(
        SingleAgent(mode="native"),
        tool_reply(("calculator", '{"expression": "2+2"}'), ("python", '{"code": "print(1)"}')),
        f"<final_answer>{QA.gold}</final_answer>",
    )
    assert trace.steps[0].tool == "calculator" and trace.steps[0].observation == "4"
    replies = [m for m in backend.calls[1] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in replies] == ["call_0", "call_1"]
    assert replies[1]["content"] == "not run: one tool call per turn"


def test_native_unknown_tool_and_max_steps() -> None:
    trace, _ = solve(
        SingleAgent(AgentLimits(max_turns=2), mode="native"),
        tool_reply(("web_search", '{"q": "x"}')),
        tool_reply(("web_search", '{"q": "y"}')),
    )
    assert trace.outcome == "unknown_tool"
    assert [s.error for s in trace.steps] == ["unknown_tool", "unknown_tool"]


def test_native_multi_agent_delegates_through_function_calls() -> None:
    trace, backend = solve(
        MultiAgent(mode="native"),
        tool_reply(("quant_agent", '{"task": "compute the growth"}')),
        tool_reply(("calculator", '{"expression": "growth(100, 125)"}')),
        "<final_answer>25</final_answer>",
        f"<final_answer>{QA.gold}</final_answer>",
    )
    assert trace.outcome == "ok" and trace.final_answer == QA.gold
    assert [(s.agent, s.tool) for s in trace.steps] == [
        ("quant_agent", "calculator"),
        ("quant_agent", None),
        ("supervisor", "quant_agent"),
        ("supervisor", None),
    ]
    supervisor_tools = {t["function"]["name"] for t in backend.options[0]["tools"]}
    assert supervisor_tools == {"knowledge_agent", "nlp_agent", "quant_agent"}
    quant_tools = {t["function"]["name"] for t in backend.options[1]["tools"]}
    assert quant_tools == {"calculator", "python", "lookup"}


def test_parse_native_never_raises_anything_but_protocol_errors() -> None:
    for name, args in [("calculator", '{"a": '), ("x", "'single'"), ("x", "{'a': 1}"), ("x", "")]:
        try:
            reply = parse_native("", [(name, args)])
        except ProtocolError:
            continue
        assert reply.action is not None and isinstance(reply.action.input, dict)


def test_the_embedded_backend_refuses_native_tools_clearly(smol_path: Path) -> None:
    backend = LlamaCppBackend(smol_path)
    with pytest.raises(ToolsUnsupported, match="--tool-mode tags"):
        asyncio.run(
            backend.chat(
                [{"role": "user", "content": "hi"}],
                GenerationConfig(
                    max_tokens=4,
                    temperature=0,
                    top_p=1,
                    tools=tuple(tool_specs({"calculator": Calculator()})),
                ),
            )
        )


def test_run_refuses_native_mode_on_an_embedded_model_before_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["run", "-m", SMOL, "-p", "single", "--tool-mode", "native", "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert "chat template has no tool format" in result.output and SMOL in result.output
    assert not (tmp_path / "r" / "results.sqlite").exists()
    bad = CliRunner().invoke(app, ["run", "-m", SMOL, "--tool-mode", "json"])
    assert bad.exit_code == 2 and "unknown tool mode 'json'" in bad.output


def test_streamed_tool_call_fragments_are_joined() -> None:
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m")
    calls: dict[int, dict[str, str]] = {}
    for frag in [
        {"index": 0, "id": "c1", "function": {"name": "calculator", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"expres'}},
        {"index": 1, "id": "c2", "function": {"name": "lookup", "arguments": {"row": "A"}}},
        {"index": 0, "function": {"arguments": 'sion": "1+1"}'}},
    ]:
        backend._add_fragment(calls, frag)
    assert calls[0] == {"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}
    assert calls[1] == {"id": "c2", "name": "lookup", "arguments": '{"row": "A"}'}


# --- the real server -------------------------------------------------------------------------


def test_the_real_server_answers_tools_with_a_tool_call(tool_server: str) -> None:
    backend = OpenAIBackend(tool_server, SMOL, stream=False)
    reply = asyncio.run(
        backend.chat(
            [
                {"role": "system", "content": "You are an analyst. Use the tools."},
                {"role": "user", "content": "What is 120 * 1.5? Use the calculator."},
            ],
            GenerationConfig(
                max_tokens=64,
                temperature=0,
                top_p=1,
                tools=tuple(tool_specs({"calculator": Calculator()})),
            ),
        )
    )
    assert reply.finish_reason == "tool_calls" and len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call.name == "calculator" and call.id
    assert "expression" in json.loads(call.arguments)
    assert reply.usage.source == "backend" and reply.usage.prompt_tokens > 50


def test_a_native_turn_against_the_real_server(tool_server: str) -> None:
    """The loop sends the tools, the server's model calls one, the tool runs, the step records
    it. (One turn: llama-cpp-python's function-calling handler ignores max_tokens for plain
    messages, so a second turn could run to the end of the context.)"""
    end = asyncio.run(
        react(
            agent="single",
            system="You are an analyst. Use the calculator for arithmetic.",
            user="What is 120 * 1.5?",
            tools={"calculator": Calculator()},
            backend=OpenAIBackend(tool_server, SMOL, stream=False),
            gen=GenerationConfig(),
            limits=AgentLimits(max_turns=1, max_tokens_per_turn=64),
            mode="native",
            harness="strict",  # its one turn may call a tool (no answer-only last turn)
        )
    )
    assert end.outcome == "max_steps"  # one turn, spent on the tool call
    (step,) = end.steps
    assert step.tool == "calculator" and step.error is None
    assert step.observation is not None and not step.observation.startswith("error")
    assert step.usage is not None and step.usage.completion_tokens > 0


def test_the_real_server_answers_an_answer_only_turn_without_a_tool_call(
    tool_server: str,
) -> None:
    """The same one-turn question that the server answers with a tool call under `auto`
    (above) gets a plain reply when the constrained harness allows only an answer."""

    def one_turn(harness: str) -> Step:
        end = asyncio.run(
            react(
                agent="single",
                system="You are an analyst. Use the calculator for arithmetic.",
                user="What is 120 * 1.5?",
                tools={"calculator": Calculator()},
                backend=OpenAIBackend(tool_server, SMOL, stream=False),
                gen=GenerationConfig(),
                limits=AgentLimits(max_turns=1, max_tokens_per_turn=48),
                mode="native",
                harness=harness,  # type: ignore[arg-type]
            )
        )
        return end.steps[0]

    assert one_turn("strict").tool == "calculator"
    answered = one_turn("constrained")
    assert answered.tool is None and "[tool call]" not in answered.output
    assert answered.usage is not None and answered.usage.completion_tokens > 0


def test_cli_native_run_records_tool_steps(tool_server: str, tmp_path: Path) -> None:
    out = tmp_path / "native"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "-m",
            SMOL,
            "--base-url",
            tool_server,
            "-p",
            "single",
            "--tool-mode",
            "native",
            "--no-stream",
            "--tasks",
            "builtin:table_qa",
            "--limit",
            "1",
            "--n-ctx",
            "2048",
            "--max-tokens",
            "64",
            "--harness",
            "strict",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = load(out).to_dict("records")
    steps = load_steps(out)
    assert row["paradigm"] == "single" and row["outcome"]
    assert list(steps["agent"].unique()) == ["single"]
    # SmolLM2 calls a tool natively at some turn (the server's grammar makes it one of ours);
    # other turns end in typed rejections, never in a crash.
    called = steps[steps["tool"].notna()]
    assert not called.empty
    assert set(called["tool"]) <= {"calculator", "python", "knowledge_search", "lookup"}
    known = {"no_action_or_answer", "action_not_json", "action_bad_input", "action_missing_tool",
             "tool_call_as_text", "empty_final_answer", "tool_error", "unknown_tool",
             "repeated_action"}  # fmt: skip
    errors = list(steps["error"].dropna())
    if row["outcome"] in ("backend_error", "context_overflow"):  # this server's template
        errors = errors[:-1]  # renders the tools again around each tool message: it overflows
    assert set(errors) <= known
    # The turn after a tool call sent the result back as a `tool` message.
    after = called.index[0] + 1
    if after < len(steps):
        assert '"role": "tool"' in steps.loc[after, "messages"]
