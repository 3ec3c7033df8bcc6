"""The OpenAI-compatible backend against a real llama-cpp-python server on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import SMOL, free_port
from slmscope.models.base import BackendUnavailable, Completion, GenerationConfig, Message
from slmscope.models.openai_compat import OpenAIBackend
from slmscope.models.retry import RetryPolicy

MESSAGES: list[Message] = [
    {"role": "system", "content": "You are a concise financial assistant."},
    {"role": "user", "content": "Name one risk of holding corporate bonds."},
]


def test_non_streaming_reads_server_usage(llama_server: str) -> None:
    async def go() -> Completion:
        backend = OpenAIBackend(llama_server, SMOL, stream=False)
        try:
            return await backend.chat(
                MESSAGES, GenerationConfig(max_tokens=20, temperature=0.0, top_p=0.9, seed=0)
            )
        finally:
            await backend.aclose()

    reply = asyncio.run(go())
    assert reply.text.strip()
    assert reply.usage.source == "backend"
    assert reply.usage.prompt_tokens == reply.raw_usage["prompt_tokens"] > 10
    assert 0 < reply.usage.completion_tokens <= 20
    assert reply.timings.latency_s > 0
    assert reply.timings.ttft_s is None  # not measurable without streaming


def test_streaming_measures_ttft_and_counts_when_server_sends_no_usage(llama_server: str) -> None:
    async def go() -> tuple:  # type: ignore[type-arg]
        plain = OpenAIBackend(llama_server, SMOL, stream=False)
        streamed = OpenAIBackend(llama_server, SMOL, stream=True)
        try:
            a = await plain.chat(
                MESSAGES, GenerationConfig(max_tokens=20, temperature=0.0, top_p=0.9, seed=0)
            )
            b = await streamed.chat(
                MESSAGES, GenerationConfig(max_tokens=20, temperature=0.0, top_p=0.9, seed=0)
            )
        finally:
            await plain.aclose()
            await streamed.aclose()
        return a, b

    plain, streamed = asyncio.run(go())
    assert streamed.text == plain.text  # greedy: same reply either way
    assert streamed.timings.ttft_s is not None
    assert 0 < streamed.timings.ttft_s < streamed.timings.latency_s
    # llama-cpp-python's server sends no usage in streams: slmscope counts, and says so.
    if streamed.raw_usage:
        assert streamed.usage.source == "backend"
    else:
        assert streamed.usage.source == "counted"
        assert abs(streamed.usage.completion_tokens - plain.usage.completion_tokens) <= 2


def test_dead_server_is_unavailable_after_bounded_retries() -> None:
    port = free_port()  # nothing listens there
    policy = RetryPolicy(attempts=3, base_delay_s=0.2, max_delay_s=0.4)
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1", SMOL, retry=policy, connect_timeout_s=1.0
    )

    async def go() -> None:
        try:
            await backend.chat(MESSAGES, GenerationConfig(max_tokens=8, temperature=0.0, top_p=0.9))
        finally:
            await backend.aclose()

    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        asyncio.run(go())
    elapsed = time.monotonic() - start
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "after 3 attempts" in info.value.__notes__[0]
    assert 0.5 < elapsed < 5.0  # two backoff sleeps (0.2 + 0.4 s), then it gives up


def test_a_server_describes_itself(llama_server: str) -> None:
    info = asyncio.run(OpenAIBackend(llama_server, SMOL).describe())
    assert (info.kind, info.in_process, info.same_machine) == ("openai", False, True)
    assert info.identity["model"] == SMOL and info.identity["base_url"] == llama_server
    assert info.identity["server"]  # what the server says of itself (its /v1/models at least)
