"""The embedded llama.cpp backend on the real SmolLM2-135M model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import SMOL
from slmscope.models.base import ContextOverflow, GenerationConfig, Message
from slmscope.models.catalog import CATALOG
from slmscope.models.llamacpp import GGUF_FILE_TYPES, LlamaCppBackend, kv_cache_bytes

SYSTEM = (
    "You are a helpful assistant who explains financial terms to new investors "
    "in one short, plain sentence. Name the term first, then say what it means for the "
    "investor who holds it, in everyday words, without jargon, formulas or lists, and without "
    "advice on what to buy or sell."
)  # longer than one 64-token chunk: only whole chunks are reused (kv_states.py)


def ask(question: str) -> list[Message]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def test_chat_usage_timings_and_prefix_reuse(smol_path: Path) -> None:
    backend = LlamaCppBackend(smol_path, n_ctx=2048, n_threads=2)

    async def go() -> tuple:  # type: ignore[type-arg]
        a = await backend.chat(
            ask("What is a bond?"),
            GenerationConfig(max_tokens=24, temperature=0.0, top_p=0.9, seed=0),
        )
        b = await backend.chat(
            ask("What is a dividend?"),
            GenerationConfig(max_tokens=24, temperature=0.0, top_p=0.9, seed=0),
        )
        return a, b

    first, second = asyncio.run(go())
    for reply in (first, second):
        assert reply.text.strip()
        assert reply.usage.prompt_tokens > 20
        assert 0 < reply.usage.completion_tokens <= 24
        assert reply.usage.source == "backend"
        assert reply.raw_usage["prompt_tokens"] == reply.usage.prompt_tokens
        assert reply.timings.latency_s > 0
        assert reply.timings.ttft_s is not None
        assert 0 < reply.timings.ttft_s < reply.timings.latency_s
    # The shared system prompt's whole chunks are served from the KV prefix the first call left.
    assert second.usage.cached_tokens >= 64 and second.usage.cached_tokens % 64 == 0
    assert second.usage.cached_tokens < second.usage.prompt_tokens


def test_cold_call_reports_no_cached_tokens(smol_path: Path) -> None:
    backend = LlamaCppBackend(smol_path, n_ctx=1024, n_threads=2)  # a fresh context
    reply = asyncio.run(
        backend.chat(
            ask("What is equity?"),
            GenerationConfig(max_tokens=8, temperature=0.0, top_p=0.9, seed=0),
        )
    )
    assert reply.usage.cached_tokens == 0


def test_greedy_is_deterministic(smol_path: Path) -> None:
    backend = LlamaCppBackend(smol_path, n_ctx=2048, n_threads=2)
    prompts = [ask("What is inflation?"), ask("What is a buyback?"), ask("What is inflation?")]

    async def go() -> list[str]:
        return [
            (
                await backend.chat(
                    p, GenerationConfig(max_tokens=16, temperature=0.0, top_p=0.9, seed=0)
                )
            ).text
            for p in prompts
        ]

    texts = asyncio.run(go())
    assert texts[0] == texts[2]


def test_context_overflow_is_typed(smol_path: Path) -> None:
    backend = LlamaCppBackend(smol_path, n_ctx=256, n_threads=2)
    long = ask("Summarize: " + "revenue rose while costs fell " * 200)
    with pytest.raises(ContextOverflow, match="context window"):
        asyncio.run(backend.chat(long, GenerationConfig(max_tokens=8, temperature=0.0, top_p=0.9)))


def test_kv_cache_size_by_hand() -> None:
    qwen05 = {  # Qwen2.5-0.5B's GGUF metadata: 24 layers, 14 heads of 64, 2 KV heads
        "general.architecture": "qwen2",
        "qwen2.block_count": "24",
        "qwen2.attention.head_count": "14",
        "qwen2.attention.head_count_kv": "2",
        "qwen2.embedding_length": "896",
    }
    assert kv_cache_bytes(qwen05, 4096) == 4096 * 24 * 2 * (64 + 64) * 2  # 48 MiB in f16
    assert kv_cache_bytes({"general.architecture": "x"}, 4096) is None


def test_memory_record_of_the_real_model(smol_path: Path) -> None:
    record = asyncio.run(LlamaCppBackend(smol_path, n_ctx=2048).memory_record())
    assert record["file_mb"] == pytest.approx(smol_path.stat().st_size / 2**20, abs=0.1)
    assert record["gguf_quantization"] in GGUF_FILE_TYPES.values()
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dims: 2048 x 30 x 3 x 128 x 2 bytes = 45 MiB
    assert record["kv_cache_mb"] == 45.0


def test_the_embedded_backend_describes_itself(smol_path: Path) -> None:
    info = asyncio.run(LlamaCppBackend(smol_path, n_ctx=2048).describe())
    assert (info.kind, info.in_process, info.same_machine) == ("llamacpp", True, True)
    assert info.identity["sha256"] == CATALOG[SMOL].sha256  # the verified file, by content
    assert len(info.identity["chat_template_sha256"]) == 64
    assert info.memory["kv_cache_mb"] == 45.0
