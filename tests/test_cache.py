"""The response cache: keyed by the model's full identity and every setting, hits marked and
costed as when they were made, and a repeated sweep served from it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from conftest import SMOL, ScriptedBackend
from slmscope.metering.energy import EnergyReading
from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import BackendInfo, Completion, GenerationConfig, Message
from slmscope.models.cache import CachedBackend, ResponseCache, request_key
from slmscope.runs import RunSpec, sweep

ASK: list[Message] = [{"role": "user", "content": "Is this positive? Sales doubled."}]
QWEN = BackendInfo("llamacpp", True, True, {"sha256": "a" * 64, "chat_template_sha256": "t"})
SMOLLM = BackendInfo("llamacpp", True, True, {"sha256": "b" * 64, "chat_template_sha256": "t"})


@pytest.fixture(autouse=True)
def own_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLMSCOPE_HOME", str(tmp_path / "home"))


def ask(backend: CachedBackend, gen: GenerationConfig | None = None) -> Completion:
    return asyncio.run(backend.chat(ASK, gen or GenerationConfig()))


def test_the_same_request_to_the_same_model_is_replayed_with_its_cost(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner = ScriptedBackend(["positive"])
    first = ask(CachedBackend(inner, cache, QWEN, "unavailable"))
    again = ask(
        CachedBackend(ScriptedBackend([]), cache, QWEN, "unavailable")
    )  # would fail if asked
    assert (first.cache_hit, again.cache_hit) == (False, True)
    assert again.text == first.text
    assert again.usage == first.usage and again.timings == first.timings  # not zero


@pytest.mark.parametrize(
    ("other_info", "other_gen"),
    [
        (SMOLLM, GenerationConfig()),  # another model file, the same prompt
        (dataclasses.replace(QWEN, identity={**QWEN.identity, "chat_template_sha256": "u"}),
         GenerationConfig()),  # the same weights under another chat template
        (BackendInfo("openai", False, True, {"model": "qwen", "server": {"v": 1}}),
         GenerationConfig()),  # a server, not the embedded backend
        (QWEN, GenerationConfig(temperature=0.7)),
        (QWEN, GenerationConfig(max_tokens=64)),
        (QWEN, GenerationConfig(seed=1)),
        (QWEN, GenerationConfig(stop=("<observation>",))),
    ],
)  # fmt: skip
def test_no_other_model_or_setting_ever_hits(
    tmp_path: Path, other_info: BackendInfo, other_gen: GenerationConfig
) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    ask(CachedBackend(ScriptedBackend(["positive"]), cache, QWEN, "unavailable"))
    other = ask(
        CachedBackend(ScriptedBackend(["negative"]), cache, other_info, "unavailable"), other_gen
    )
    assert not other.cache_hit and other.text == "negative"
    assert request_key(QWEN, ASK, GenerationConfig()) != request_key(other_info, ASK, other_gen)


def test_a_repeated_sweep_is_served_from_the_cache(tmp_path: Path) -> None:
    spec = RunSpec(models=(SMOL,), paradigms=("base", "single"), tasks=("builtin:sentiment",),
                   limit=2, harnesses=("constrained",))  # fmt: skip
    script = ["positive", "<think>x</think><final_answer>negative</final_answer>"] * 2
    first = sweep(spec, tmp_path / "a", backends={SMOL: ScriptedBackend(script)}, cache=True)
    again = sweep(spec, tmp_path / "b", backends={SMOL: ScriptedBackend([])}, cache=True)
    one, two = first.results(), again.results()
    assert (one["cache_hits"] == 0).all() and (two["cache_hits"] == two["n_calls"]).all()
    columns = ["sample_id", "paradigm", "final_answer", "total_tokens", "energy_method"]
    assert one[columns].values.tolist() == two[columns].values.tolist()
    assert (two["latency_s"] > 0).all()  # the replayed calls keep the time they took
    uncached = sweep(spec, tmp_path / "c", backends={SMOL: ScriptedBackend(script)})
    assert (uncached.results()["cache_hits"] == 0).all()  # without --cache nothing replays


def test_a_server_stamping_the_time_keeps_its_key() -> None:
    """vLLM and llama-server put the current time in /v1/models: not part of the identity."""

    def served(created: int, version: str = "0.10.1") -> BackendInfo:
        models = {"data": [{"id": "qwen", "created": created, "owned_by": "vllm"}]}
        return BackendInfo(
            "openai", False, True, {"server": {"version": version, "models": models}}
        )

    gen = GenerationConfig()
    assert request_key(served(1), ASK, gen) == request_key(served(2), ASK, gen)
    assert request_key(served(1), ASK, gen) != request_key(served(1, "0.11.0"), ASK, gen)


def test_a_hit_measured_by_another_meter_has_no_energy(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    reply = dataclasses.replace(
        Completion("x", Usage(1, 1), Timings(0.1, 0.05, 10.0)),
        energy=EnergyReading(2.0, "rapl"),
    )
    ask(CachedBackend(ScriptedBackend([reply]), cache, QWEN, "rapl"))
    same = ask(CachedBackend(ScriptedBackend([]), cache, QWEN, "rapl"))
    other = ask(CachedBackend(ScriptedBackend([]), cache, QWEN, "estimate"))
    assert same.energy.joules == 2.0 and other.energy.joules is None
