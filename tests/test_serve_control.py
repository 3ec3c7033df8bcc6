"""The server's control flow under a real uvicorn, on scripted backends (the real model's side is
test_serve.py): the fallback taken when the agent fails, an agent's turns streamed before its
answer, the router's choice per request, and the per-request budgets of tokens and time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from conftest import ScriptedBackend
from serving import read_metrics, serve_in_thread, total
from slmscope.cli import app
from slmscope.errors import ConfigError
from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import (
    BadResponse,
    Completion,
    ContextOverflow,
    GenerationConfig,
    Message,
)
from slmscope.paradigms.router import Objective, Router
from slmscope.runs.store import Store
from slmscope.serve.record import Recorder
from slmscope.serve.service import ServeConfig

CALC = '<action>{"tool": "calculator", "input": {"expression": "1784 - 1495"}}</action>'
ANSWER = "<final_answer>289</final_answer>"
QUESTION = "Revenue was 1,784 in 2023 and 1,495 in 2022. By how much did it grow?"


def ask(base: str, timeout: float = 60, **extra: Any) -> httpx.Response:
    body = {"model": "scripted", "messages": [{"role": "user", "content": QUESTION}], **extra}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=timeout)


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
    started = 0  # calls begun (a cancelled one never reaches the script)

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        self.started += 1
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


def test_a_reply_cut_by_its_token_limit_finishes_with_length() -> None:
    cut = Completion(
        text="The cat was",
        usage=Usage(prompt_tokens=30, completion_tokens=3),
        timings=Timings(latency_s=0.01, ttft_s=0.005, decode_tps=300.0),
        finish_reason="length",
    )
    config = ServeConfig(model="scripted", paradigm="base")
    with serve_in_thread(config, ScriptedBackend([cut])) as base:
        reply = ask(base, max_tokens=3).json()
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["message"]["content"] == "The cat was"


def test_what_no_request_can_make_a_500_of() -> None:
    """A key in another script, a route that is not there, a prompt over the window, a bug
    in a backend: each an OpenAI error object, and the server goes on."""
    backend = ScriptedBackend(
        [ContextOverflow("prompt of 9000 tokens > 4096"), OverflowError("bug"), "fine"]
    )
    config = ServeConfig(model="scripted", paradigm="base", api_keys=("clé",))
    with serve_in_thread(config, backend) as base:
        chat = f"{base}/v1/chat/completions"
        body = {"model": "scripted", "messages": [{"role": "user", "content": QUESTION}]}
        for header in ("Bearer cl\xe9".encode("latin-1"), "Bearer é".encode(), b"Bearer"):
            wrong = httpx.post(chat, json=body, headers={"Authorization": header})
            assert wrong.status_code == 401, header
        key = {"Authorization": "bearer clé".encode()}  # the scheme in any case, the key in UTF-8
        missing = httpx.get(f"{base}/v1/completions", headers=key)
        assert missing.status_code == 404 and missing.json()["error"]["message"] == "Not Found"
        overflow = httpx.post(chat, json=body, headers=key)
        assert overflow.status_code == 400
        assert overflow.json()["error"]["code"] == "context_length_exceeded"
        crash = httpx.post(chat, json=body, headers=key)
        assert crash.status_code == 500 and crash.json()["error"]["type"] == "server_error"
        fine = httpx.post(chat, json=body, headers=key)
        assert fine.status_code == 200 and fine.json()["choices"][0]["message"]["content"]


def test_a_client_gone_before_its_answer_stops_its_agent_and_frees_its_place() -> None:
    backend = Slow([CALC, ANSWER, CALC, ANSWER])
    config = ServeConfig(model="scripted", paradigm="single", harness="strict", max_running=1)
    with serve_in_thread(config, backend) as base:
        with contextlib.suppress(httpx.TimeoutException):
            ask(base, timeout=0.5)
        time.sleep(3)  # the first call (2 s) ends; the agent must not make a second one
        ready = httpx.get(f"{base}/ready").json()
        metrics = read_metrics(base)
    assert ready["running"] == 0 and ready["waiting"] == 0
    assert metrics["slmscope:request_refused_total{status=499}"] == 1
    assert backend.started == 1 and not backend.calls  # stopped in its first call
    assert total(metrics, "slmscope:request_outcome_total") == 0


def test_recording_into_an_experiments_store_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """Even where the experiment's spec mentions the word (its data folder is `/data/served`)."""
    store = Store(tmp_path / "run", writer=True)
    spec = {"models": ["m"], "data_dir": "/data/served"}
    store.start_run("r1", "2026-12-03", spec=spec, versions={}, machine={}, models={})
    store.close()
    lock = (tmp_path / "run" / ".writer.lock").read_bytes()
    with pytest.raises(ConfigError, match=r"holds an experiment's runs \(r1\)"):
        Recorder.check(str(tmp_path / "run"))
    assert (tmp_path / "run" / ".writer.lock").read_bytes() == lock
    Recorder.check(str(tmp_path / "new"))  # a new folder is fine, and not made yet
    assert not (tmp_path / "new").exists()
