"""Saved KV states (models/kv_states.py): the memory bound, and on the real models the same
greedy answers with reuse as without, for fewer prompt tokens evaluated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SMOL, cached_model
from slmscope.models import llamacpp
from slmscope.models.base import GenerationConfig, Message
from slmscope.models.kv_states import CHUNK, KvStates, common_prefix, whole_chunks
from slmscope.models.llamacpp import LlamaCppBackend
from slmscope.paradigms import AgentLimits, get_paradigm
from slmscope.tasks.builtin import SUITE

MB = 2**20


def tokens(*parts: int) -> np.ndarray[Any, np.dtype[np.intc]]:
    return np.array(parts, dtype=np.intc)


def test_common_prefix_and_whole_chunks() -> None:
    assert common_prefix(tokens(1, 2, 3), tokens(1, 2, 4, 5)) == 2
    assert common_prefix(tokens(1, 2), tokens(1, 2, 3)) == 2
    assert common_prefix(tokens(), tokens(1)) == 0
    assert common_prefix(tokens(7), tokens(8)) == 0
    assert whole_chunks(CHUNK - 1) == 0 and whole_chunks(2 * CHUNK + 5) == 2 * CHUNK


def test_many_distinct_prefixes_never_hold_more_than_the_budget() -> None:
    states = KvStates(budget_bytes=10 * MB)
    rng = np.random.default_rng(0)
    for n in range(200):
        size = int(rng.integers(1, 4 * MB))
        states.put(rng.integers(0, 50_000, size=CHUNK * (1 + n % 5)).astype(np.intc), b"x" * size)
        assert states.held_bytes <= 10 * MB
        assert states.held_bytes == sum(len(s.data) for s in states._held.values())
    assert states.stats.peak_bytes <= 10 * MB
    assert states.stats.evicted > 0
    assert not states.put(tokens(*range(CHUNK)), b"x" * (11 * MB))  # larger than the budget
    assert states.stats.too_large == 1


def test_least_recently_used_leaves_first_and_a_longer_state_replaces_its_prefix() -> None:
    states = KvStates(budget_bytes=3 * MB)
    a, b, c = (tokens(k, *range(CHUNK - 1)) for k in (1, 2, 3))
    for t in (a, b, c):
        states.put(t, b"x" * MB)
    found, shared = states.best(tokens(1, *range(CHUNK + 10)))
    assert found is not None and shared == CHUNK
    states.touch(found)  # a was used: b is now the oldest
    states.put(tokens(4, *range(CHUNK - 1)), b"x" * MB)
    assert states.best(b)[1] == 0 and states.best(a)[1] == CHUNK
    longer = np.concatenate([a, tokens(*range(CHUNK))])
    states.put(longer, b"x" * MB)  # covers a: a is dropped, not kept twice
    assert len(states) == 3 and states.covers(a) and states.best(a)[0].tokens.size == 2 * CHUNK


def test_the_setting_is_part_of_the_cell_key_of_embedded_runs_only() -> None:
    from slmscope.runs.spec import RunSpec

    def tag(mb: int, url: str | None = None) -> str:
        return RunSpec(
            ("m",), ("single",), ("builtin",), kv_states_mb=mb, base_url=url
        ).settings_tag()

    assert len({tag(0), tag(64), tag(512)}) == 3
    assert tag(0, "http://x/v1") == tag(512, "http://x/v1")  # a server keeps its own cache


def _decoded(backend: LlamaCppBackend) -> int:
    """Tokens llama.cpp itself says it decoded (its performance counters), prompt and reply."""
    import llama_cpp

    perf = llama_cpp.llama_perf_context(backend._llm().ctx)
    return int(perf.n_p_eval) + int(perf.n_eval)


def _run(path: Path, mb: int) -> tuple[list[list[str]], int, int, dict[str, Any]]:
    """Base, single and multi agent on the same samples, in turn as a run takes them; each
    step's output, prompt tokens sent and evaluated, and the states' record."""
    llamacpp.unload()
    backend = LlamaCppBackend(path, n_ctx=4096, kv_states_mb=mb)
    limits = AgentLimits(max_turns=2, max_tokens_per_turn=64, max_repairs=1)
    arms = [get_paradigm("base")] + [
        get_paradigm(name, harness="act", limits=limits) for name in ("single", "multi")
    ]
    outputs: list[list[str]] = []
    sent = evaluated = 0

    async def go() -> dict[str, Any]:
        nonlocal sent, evaluated
        await backend.load()
        llama_cpp_before = _decoded(backend)
        for name in ("builtin:table_qa", "builtin:sentiment"):
            for task in SUITE[name]()[:1]:
                for arm in arms:
                    trace = await arm.solve(task.problem, backend, GenerationConfig())
                    outputs.append([s.output for s in trace.steps] + [str(trace.final_answer)])
                    for s in trace.steps:
                        assert s.usage is not None
                        sent += s.usage.prompt_tokens
                        evaluated += s.usage.prompt_tokens - s.usage.cached_tokens
        record = (await backend.memory_record())["kv_states"]
        record["decoded"] = _decoded(backend) - llama_cpp_before
        return dict(record)

    record = asyncio.run(go())
    llamacpp.unload()
    return outputs, sent, evaluated, record


@pytest.mark.model
@pytest.mark.parametrize("model", [SMOL, "qwen2.5-coder-0.5b-instruct"])
def test_reuse_keeps_greedy_answers_and_evaluates_fewer_prompt_tokens(model: str) -> None:
    path = cached_model(model)
    off, sent_off, eval_off, rec_off = _run(path, 0)
    on, sent_on, eval_on, rec_on = _run(path, 256)
    assert on == off  # every step's output and every final answer, the same
    assert sent_on == sent_off
    assert rec_off["saved"] == rec_off["restored"] == 0
    assert rec_on["restored"] > 0 and rec_on["peak_mb"] <= 256
    assert eval_on < 0.75 * eval_off, (eval_on, eval_off)
    # llama.cpp's own counters agree: the difference is prompt tokens not decoded again
    assert rec_off["decoded"] - rec_on["decoded"] == eval_off - eval_on


@pytest.mark.model
def test_a_small_budget_holds_on_the_real_model() -> None:
    _, _, _, record = _run(cached_model(SMOL), 1)
    assert record["peak_mb"] <= 1 and record["held_mb"] <= 1
    assert record["saved"] + record["too_large"] > 0


@pytest.mark.model
def test_the_same_prompt_gives_the_same_answer_whatever_came_before() -> None:
    """Why prompts are evaluated in fixed chunks: before they were (dadc07d), these eight prompts
    taken in turn gave other greedy answers on Qwen2.5-Coder-0.5B than each of them did alone, on
    a fresh context, with no saved states at all (checked; other prompts may agree by chance)."""
    path = cached_model("qwen2.5-coder-0.5b-instruct")
    agents = [
        "You are agent A. "
        + "You answer questions about finance with care and show numbers. " * 20,
        "You are agent B, a specialist. "
        + "You compute percent changes and ratios precisely. " * 20,
    ]
    questions = (
        "What is 12% of 50?",
        "Is revenue growth of 5% good?",
        "Name a bank.",
        "Define EBITDA.",
    )
    prompts: list[list[Message]] = [
        [{"role": "system", "content": a}, {"role": "user", "content": q}]
        for q in questions
        for a in agents
    ]
    gen = GenerationConfig(max_tokens=24)

    async def answers(asked: list[list[Message]], mb: int) -> list[str]:
        llamacpp.unload()
        backend = LlamaCppBackend(path, n_ctx=2048, kv_states_mb=mb)
        return [(await backend.chat(p, gen)).text for p in asked]

    alone = [asyncio.run(answers([p], 0))[0] for p in prompts]
    assert asyncio.run(answers(prompts, 0)) == alone
    assert asyncio.run(answers(prompts, 64)) == alone
    llamacpp.unload()
