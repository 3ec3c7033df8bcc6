"""The server's control flow under a real uvicorn, on scripted backends (the real model's side is
test_serve.py): the fallback taken when the agent fails, an agent's turns streamed before its
answer, the router's choice per request, and the per-request budgets of tokens and time."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
from typer.testing import CliRunner

from conftest import ScriptedBackend
from serving import read_metrics, serve_in_thread, total
from slmscope.cli import app
from slmscope.models.base import BadResponse, Completion, GenerationConfig, Message
from slmscope.paradigms.router import Objective, Router
from slmscope.serve.service import ServeConfig

CALC = '<action>{"tool": "calculator", "input": {"expression": "1784 - 1495"}}</action>'
ANSWER = "<final_answer>289</final_answer>"
QUESTION = "Revenue was 1,784 in 2023 and 1,495 in 2022. By how much did it grow?"


def ask(base: str, **extra: Any) -> httpx.Response:
    body = {"model": "scripted", "messages": [{"role": "user", "content": QUESTION}], **extra}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)


def test_the_fallback_answers_when_the_agent_fails() -> None:
    backend = ScriptedBackend([BadResponse("garbled reply"), "289"])
    config = ServeConfig(model="scripted", paradigm="single+fallback", harness="strict")
    with serve_in_thread(config, backend) as base:
        reply = ask(base).json()
        metrics = read_metrics(base)
    extension = reply["slmscope"]
    assert reply["choices"][0]["message"]["content"] == "289"
    assert extension["fallback_taken"] and extension["agent_outcome"] == "backend_error"
    assert extension["outcome"] == "ok" and extension["calls"] == 2
    assert metrics["slmscope:fallback_taken_total{}"] == 1
    assert len(backend.calls) == 2  # the agent's failed call, then base's


def test_an_agents_turns_stream_before_its_answer() -> None:
    backend = ScriptedBackend([CALC, ANSWER])
    config = ServeConfig(model="scripted", paradigm="single", harness="strict")
    with serve_in_thread(config, backend) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
        messages: Any = [{"role": "user", "content": QUESTION}]
        chunks = list(
            client.chat.completions.create(model="scripted", messages=messages, stream=True)
        )
    notes = [(c.model_extra or {}).get("slmscope") for c in chunks]
    steps = [n["step"] for n in notes if n and "step" in n]
    assert [(s["turn"], s["tool"]) for s in steps] == [(1, "calculator"), (2, None)]
    first_content = next(
        i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content
    )
    last_step = max(i for i, n in enumerate(notes) if n and "step" in n)
    assert last_step < first_content
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "289"
    assert notes[-1] is not None and notes[-1]["tool_calls"] == 1


def test_the_router_chooses_per_request_from_what_it_declares(tmp_path: Path) -> None:
    router = Router(
        method="type",
        objective=Objective(),
        arms=("base", "single·strict"),
        fixed="single·strict",
        model="scripted",
        by_type={"sentiment": "base"},
    )
    router.save(tmp_path / "router.json")
    backend = ScriptedBackend(["positive", CALC, ANSWER])
    traffic = tmp_path / "traffic"
    config = ServeConfig(model="scripted", router=tmp_path / "router.json", record=str(traffic))
    with serve_in_thread(config, backend) as base:
        hints = {"task_type": "sentiment", "choices": ["positive", "negative", "neutral"]}
        declared = ask(base, slmscope=hints).json()["slmscope"]
        plain = ask(base).json()["slmscope"]
        metrics = read_metrics(base)
        ready = httpx.get(f"{base}/ready").json()
    assert declared["arm"] == "base" and declared["routed"] and declared["outcome"] == "ok"
    assert plain["arm"] == "single·strict" and plain["tool_calls"] == 1
    assert ready["arms"] == ["base", "single·strict"] and ready["router"] == "type"
    assert metrics["slmscope:router_choice_total{arm=base}"] == 1
    assert metrics["slmscope:router_choice_total{arm=single·strict}"] == 1
    # what the model was shown for the declared request: its choices, in base's prompt
    assert "positive, negative, neutral" in json.dumps(backend.calls[0])
    # the report of the recorded traffic: what each arm answered, with no score to show
    shown = CliRunner().invoke(app, ["report", str(traffic), "--html", str(tmp_path / "r.html")])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"served:sentiment +- ok 100% *\n", shown.output), shown.output
    assert re.search(r"served +- ok 100% *\n", shown.output), shown.output
    assert re.search(r"base +- +100%", shown.output) and "nan" not in shown.output
    assert "no sample of scripted has a score" in shown.output


def test_a_request_token_budget_ends_the_agent_and_says_so() -> None:
    backend = ScriptedBackend([CALC, ANSWER])  # each scripted call spends 15 tokens
    config = ServeConfig(model="scripted", paradigm="single", harness="strict")
    with serve_in_thread(config, backend) as base:
        reply = ask(base, slmscope={"max_request_tokens": 12}).json()
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["message"]["content"] == ""
    assert reply["slmscope"]["outcome"] == "max_steps"
    assert "budget of 12 tokens" in reply["slmscope"]["error"]
    assert len(backend.calls) == 1  # the second call was never made
    assert backend.gens[0].max_tokens <= 12  # and the first could not spend more than the budget


class Slow(ScriptedBackend):
    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        await asyncio.sleep(2)
        return await super().chat(messages, gen)


def test_a_request_wall_budget_ends_it_as_a_timeout() -> None:
    backend = Slow([CALC, ANSWER])
    config = ServeConfig(model="scripted", paradigm="single", harness="strict")
    with serve_in_thread(config, backend) as base:
        reply = ask(base, slmscope={"max_request_seconds": 0.5}).json()
        metrics = read_metrics(base)
    assert reply["slmscope"]["outcome"] == "timeout"
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["slmscope"]["cost"]["latency_s"] < 1.5
    assert total(metrics, "slmscope:request_outcome_total{harness=strict,outcome=timeout") == 1
