"""The `act` harness on real models and real servers: a first turn is an action on a real tool
(the grammar in tags mode, `tool_choice: required` on llama-server in native mode), and a
server that cannot honour `required` is refused before the run, in one line."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMOL, cached_model, run_server
from slmscope.cli import app
from slmscope.models import check_backend
from slmscope.models.base import GenerationConfig, ToolsUnsupported
from slmscope.models.catalog import resolve
from slmscope.models.llamacpp import LlamaCppBackend
from slmscope.paradigms import AgentLimits, acts_of, get_paradigm
from slmscope.paradigms.multi_agent import DEFAULT_ROSTER
from slmscope.paradigms.single_agent import task_tools
from slmscope.tasks.builtin import SUITE
from slmscope.tools.knowledge import KnowledgeSearch

ACTION = re.compile(r'<think>[^<]*</think>\s*<action>\{"tool":\s*"(?P<tool>[^"]+)"')
TASKS = ("builtin:sentiment", "builtin:table_qa", "builtin:credit_scoring")


@pytest.fixture(scope="module")
def jinja_server(
    smol_path: Path, llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """llama-server with the model's own chat template (--jinja): native tool calls."""

    def argv(port: int) -> list[str]:
        return [
            str(llama_server_bin), "-m", str(smol_path), "--alias", SMOL, "--host", "127.0.0.1",
            "--port", str(port), "-c", "4096", "--jinja", "-t", str(os.cpu_count() or 2),
            "--no-webui",
        ]  # fmt: skip

    yield from run_server(argv, tmp_path_factory, "llama-server")


@pytest.mark.model
@pytest.mark.parametrize("model", [SMOL, "qwen2.5-coder-0.5b-instruct"])
@pytest.mark.parametrize("paradigm", ["single", "multi"])
def test_under_act_every_first_turn_is_an_action_on_a_real_tool(model: str, paradigm: str) -> None:
    backend = LlamaCppBackend(cached_model(model), n_ctx=4096)
    agent = get_paradigm(paradigm, harness="act", limits=AgentLimits(max_turns=2))
    for name in TASKS:
        task = SUITE[name]()[0]
        trace = asyncio.run(agent.solve(task.problem, backend, GenerationConfig()))
        known = set(task_tools(task.problem, KnowledgeSearch())) | {s.name for s in DEFAULT_ROSTER}
        first = {}  # each agent's first step (the supervisor's comes after its hand-off's)
        for step in trace.steps:
            first.setdefault(step.agent, step)
        for agent_name, step in first.items():
            # The grammar makes the turn an action on a real tool; what the model puts in it
            # is its own: it may run (None, tool_error), copy the example (refused, counted as
            # a copy) or run on inside its input until the token budget cuts it (cut_off).
            called = ACTION.match(step.output.strip())
            assert called and called["tool"] in known, (agent_name, step.output)
            assert step.error in (None, "tool_error", "example_copy", "cut_off"), (agent_name, step)
            assert (step.error == "cut_off") == (step.tool is None), (agent_name, step)
        acts = acts_of(trace)
        if model == SMOL and not acts.acted:
            # What the harness guarantees of a 135M model: whatever the agent sends is refused
            # and counted when it is the example's (its supervisor may copy the example's
            # hand-off on every turn; once repairs are spent the copy runs, still not counted
            # as acting), never counted as its own work.
            top = trace.steps[-1].agent  # the agent that answered
            tried = [s for s in trace.steps if s.agent == top and (s.tool or s.error == "cut_off")]
            assert acts.copies >= 1, trace.steps
            assert all(s.error in ("example_copy", "cut_off") for s in tried), trace.steps
        else:
            assert acts.acted, trace.steps


@pytest.mark.parametrize("server", ["tool_server", "jinja_server"])
def test_a_server_that_does_not_honour_required_is_refused_in_one_line(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """llama-cpp-python's chatml-function-calling handler takes only `auto`; this llama-server
    build (llama-cpp-python 0.3.36's llama.cpp, --jinja) answers in plain text on SmolLM2 and
    on Qwen2.5 alike (a JSON code block, no `tool_calls`): both are refused before the run."""
    base_url = request.getfixturevalue(server)
    card = resolve(SMOL, base_url=base_url)
    with pytest.raises(ToolsUnsupported, match="tool_choice 'required'"):
        asyncio.run(check_backend(card, stream=False, required_tools=True))
    out = tmp_path / "refused"
    args = ["run", "-m", SMOL, "--base-url", base_url, "-p", "single", "--tool-mode"]
    args += ["native", "--harness", "act", "--tasks", "builtin:sentiment", "--limit", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code != 0 and "tool_choice 'required'" in result.output
    assert "Traceback" not in result.output and not (out / "results.sqlite").exists()
    assert len([ln for ln in result.output.splitlines() if "required" in ln]) == 1
