"""`slmscope serve` as a real process (uvicorn on 127.0.0.1) on the real SmolLM2-135M: what a
client of an OpenAI-compatible server meets (the official `openai` client, streamed or not),
the refusals (401, 413, 400, 404, 429 with Retry-After), /metrics as Prometheus parses it,
a bounded load, recorded traffic, and SIGTERM with requests in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import SMOL
from serving import AUTH, KEY, Server, serve_process, total
from slmscope.runs.store import Store
from slmscope.tools.calculator import Calculator
from slmscope.tools.python_sandbox import PythonSandbox

pytestmark = pytest.mark.model

ASK = {"model": SMOL, "messages": [{"role": "user", "content": "Name a colour of the sky."}]}


@pytest.fixture(scope="module")
def server(smol_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("serve")
    args = ["-m", SMOL, "-p", "base", "--api-key", KEY, "--threads", "2"]
    args += ["--max-running", "2", "--max-waiting", "4", "--turn-tokens", "16"]
    args += ["--max-body-bytes", "4096", "--record", str(tmp / "traffic")]
    with serve_process(tmp, *args) as running:
        running.traffic = tmp / "traffic"  # type: ignore[attr-defined]
        yield running


def test_refusals_are_openai_errors_and_counted(server: Server) -> None:
    before = server.metrics()
    chat = f"{server.v1}/chat/completions"
    no_key = httpx.post(chat, json=ASK, timeout=30)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.v1}/models", timeout=30).status_code == 401
    listed = httpx.get(f"{server.v1}/models", headers=AUTH, timeout=30).json()
    assert [m["id"] for m in listed["data"]] == [SMOL]

    huge = {**ASK, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert httpx.post(chat, json=huge, headers=AUTH, timeout=30).status_code == 413
    tools = {**ASK, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    refused = httpx.post(chat, json=tools, headers=AUTH, timeout=30)
    assert refused.status_code == 400 and "client-side tools" in refused.json()["error"]["message"]
    empty = httpx.post(chat, json={**ASK, "messages": []}, headers=AUTH, timeout=30)
    assert empty.status_code == 400 and empty.json()["error"]["message"].startswith("messages")
    other = httpx.post(chat, json={**ASK, "model": "gpt-4o"}, headers=AUTH, timeout=30)
    assert other.status_code == 404 and other.json()["error"]["code"] == "model_not_found"

    after = server.metrics()
    for status, n in {"401": 2, "413": 1, "400": 2, "404": 1}.items():
        key = f"slmscope:request_refused_total{{status={status}}}"
        assert after.get(key, 0) - before.get(key, 0) == n, key
    assert total(after, "slmscope:request_outcome_total") == total(
        before, "slmscope:request_outcome_total"
    )  # nothing refused reached the model


def test_the_official_client_gets_answers_streamed_and_not(server: Server) -> None:
    before = server.metrics()
    client = openai.OpenAI(base_url=server.v1, api_key=KEY, max_retries=0, timeout=120)
    messages: Any = ASK["messages"]
    reply = client.chat.completions.create(model=SMOL, messages=messages, max_tokens=16)
    answer = reply.choices[0].message.content
    assert answer and reply.choices[0].finish_reason == "stop"
    extension = (reply.model_extra or {})["slmscope"]
    assert extension["paradigm"] == "base" and extension["outcome"] == "ok"
    assert not extension["routed"] and not extension["fallback_taken"]
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert extension["cost"]["prompt_tokens"] == reply.usage.prompt_tokens
    assert extension["cost"]["energy_method"] == "estimate"

    stream = client.chat.completions.create(
        model=SMOL,
        messages=messages,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip() and len(finished) == 1 and finished[0].choices[0].finish_reason == "stop"
    assert (finished[0].model_extra or {})["slmscope"]["outcome"] == "ok"
    assert chunks[-1].usage is not None and not chunks[-1].choices
    used = reply.usage.prompt_tokens + chunks[-1].usage.prompt_tokens

    after = server.metrics()
    ok = "slmscope:request_outcome_total{harness=none,outcome=ok,paradigm=base}"
    assert after[ok] - before.get(ok, 0) == 2
    prompt = "slmscope:prompt_tokens_total{}"
    assert after[prompt] - before[prompt] == used
    latency = "slmscope:e2e_request_latency_seconds_count{}"
    assert after[latency] - before[latency] == 2


def test_a_bounded_load_is_answered_or_refused_with_429(server: Server) -> None:
    """200 requests, 16 at a time, against 2 running and 4 waiting: no 5xx, each one either
    answered or refused with a 429 that says when to retry; the metrics count the same."""
    before = server.metrics()

    async def load() -> list[httpx.Response]:
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=300, headers=AUTH) as client:

            async def one(n: int) -> httpx.Response:
                body = {**ASK, "messages": [{"role": "user", "content": f"Say {n}."}]}
                async with gate:
                    return await client.post(f"{server.v1}/chat/completions", json=body)

            return await asyncio.gather(*(one(n) for n in range(200)))

    replies = asyncio.run(load())
    statuses = Counter(r.status_code for r in replies)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= 6 and statuses[429] > 0, statuses
    for r in replies:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_exceeded"
        else:
            assert r.json()["choices"][0]["message"]["role"] == "assistant"
    after = server.metrics()
    refused = "slmscope:request_refused_total{status=429}"
    assert after[refused] - before.get(refused, 0) == statuses[429]
    outcomes = "slmscope:request_outcome_total"
    assert total(after, outcomes) - total(before, outcomes) == statuses[200]
    assert after["slmscope:num_requests_running{}"] == 0
    print(f"load: {dict(statuses)}")


def test_served_requests_are_recorded_without_a_reference(server: Server) -> None:
    answered = total(server.metrics(), "slmscope:request_outcome_total")
    store = Store.open(server.traffic)  # type: ignore[attr-defined]
    try:
        results = store.results()
        assert len(results) == answered > 0
        assert {r.score for r in results} == {None} and {r.gold for r in results} == {""}
        assert {r.paradigm for r in results} == {"base"}
        assert all(r.prompt_tokens > 0 and r.n_calls == 1 for r in results)
        run = store.runs()[0]
        assert json.loads(run["spec"])["served"]["paradigm"] == "base"
        assert len(store.steps()) == len(results)
    finally:
        store.close()


def test_sigterm_answers_every_request_running_or_queued(smol_path: Path, tmp_path: Path) -> None:
    args = ["-m", SMOL, "-p", "base", "--threads", "2", "--max-running", "1"]  # 2 queued
    args += ["--turn-tokens", "200", "--record", str(tmp_path / "traffic")]
    with serve_process(tmp_path, *args) as server:
        replies: list[httpx.Response] = []

        def ask(n: int) -> None:
            words = f"Count from 1 to {200 + n}, one number a line."
            body = {**ASK, "messages": [{"role": "user", "content": words}]}
            replies.append(httpx.post(f"{server.v1}/chat/completions", json=body, timeout=300))

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        waited = 0.0
        while waited < 60:
            m = server.metrics()
            if m["slmscope:num_requests_running{}"] + m["slmscope:num_requests_waiting{}"] == 3:
                break
            threading.Event().wait(0.05)
            waited += 0.05
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(300)
        assert [r.status_code for r in replies] == [200, 200, 200]
        # uvicorn raises the signal again once it has shut down gracefully
        assert server.proc.wait(120) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.log.read_text()
        assert all(r.json()["slmscope"]["outcome"] == "ok" for r in replies)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.base}/health", timeout=5)
    report = subprocess.run(
        [sys.executable, "-m", "slmscope", "report", str(tmp_path / "traffic")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert "served" in report.stdout


def test_a_real_agent_streams_each_turn_then_its_answer(smol_path: Path, tmp_path: Path) -> None:
    """On a machine without the sandbox's boundary (no bubblewrap on PATH): the agent is served
    without the python tool, and /ready says why."""
    args = ["-m", SMOL, "-p", "single", "--threads", "2", "--turn-tokens", "64"]
    args += ["--record", str(tmp_path / "traffic")]
    (tmp_path / "bin").mkdir()
    with serve_process(tmp_path, *args, env={"PATH": str(tmp_path / "bin")}) as server:
        ready = httpx.get(f"{server.base}/ready", timeout=10).json()
        client = openai.OpenAI(base_url=server.v1, api_key="none", max_retries=0, timeout=300)
        messages: Any = [{"role": "user", "content": "What is 1,784 minus 1,495?"}]
        chunks = list(
            client.chat.completions.create(
                model=SMOL,
                messages=messages,
                stream=True,
                extra_body={"slmscope": {"answer_format": "number"}},
            )
        )
    assert ready["arms"] == ["single·act"]
    assert not ready["sandbox"]["available"]
    assert ready["python_tool"].startswith("left out: bubblewrap (bwrap) is not installed")
    store = Store.open(tmp_path / "traffic")
    try:
        shown = [json.loads(s.messages)[0]["content"] for s in store.steps()]
    finally:
        store.close()
    assert shown and all(Calculator.description in text for text in shown)
    assert not any(PythonSandbox.description in text for text in shown)
    notes = [(c.model_extra or {}).get("slmscope") or {} for c in chunks]
    steps = [n["step"] for n in notes if "step" in n]
    record = notes[-1]
    assert steps and record["calls"] == len(steps)  # every model call was streamed as it came
    assert [s["turn"] for s in steps] == list(range(1, len(steps) + 1))
    assert {s["agent"] for s in steps} == {"single"}
    assert record["paradigm"] == "single" and record["harness"] == "act"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert finish == ["stop" if record["outcome"] == "ok" else finish[0]]
    assert (text != "") == (record["outcome"] == "ok")
    print(f"agent: {record['outcome']}, {len(steps)} calls, {record['tool_calls']} tools, {text!r}")


def test_served_in_front_of_llama_server_with_its_slots(
    parallel_server: str, tmp_path: Path
) -> None:
    """The model run by llama-server (4 slots): slmscope's base paradigm in front of it sends
    its calls there, up to 4 at once, and reports the server's own token counts."""
    args = ["-m", SMOL, "-p", "base", "--base-url", parallel_server, "--slots", "4"]
    with serve_process(tmp_path, *args, "--turn-tokens", "24") as server:
        ready = httpx.get(f"{server.base}/ready", timeout=10).json()

        async def four() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=120) as client:
                return await asyncio.gather(
                    *(
                        client.post(f"{server.v1}/chat/completions", json={**ASK, "seed": n})
                        for n in range(4)
                    )
                )

        replies = asyncio.run(four())
    assert ready["backend"].startswith("openai:") and parallel_server in ready["backend"]
    assert [r.status_code for r in replies] == [200] * 4
    for r in replies:
        body = r.json()
        assert body["slmscope"]["outcome"] == "ok" and body["usage"]["prompt_tokens"] > 0
        assert body["slmscope"]["cost"]["energy_method"] != "estimate"  # not this process's work
