"""Shared fixtures: the real SmolLM2-135M model and a real llama-cpp-python server on loopback."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import (
    Abilities,
    BackendError,
    BackendInfo,
    Completion,
    GenerationConfig,
    Message,
    ToolCall,
)
from slmscope.models.catalog import CATALOG

SMOL = "smollm2-135m-instruct"
SHARED_FINBEN = Path(__file__).resolve().parents[2] / "shared" / "finben"


SETUP_HINT = "run `make test` (its set-up step, scripts/prepare-tests, prepares it)"


def cached_model(model: str) -> Path:
    """A real GGUF the set-up step pulled into the slmscope cache: a test never fetches or
    builds anything, so none of that counts against a test's time limit."""
    path = CATALOG[model].local_path
    if path is None or not path.is_file():
        pytest.fail(f"{model} is not in the slmscope cache ({path}): {SETUP_HINT}")
    return path


@pytest.fixture(scope="session")
def smol_path() -> Path:
    """The real SmolLM2-135M GGUF (see cached_model)."""
    return cached_model(SMOL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(smol_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1; yields its /v1 base URL."""
    yield from serve(smol_path, tmp_path_factory)


@pytest.fixture(scope="session")
def tool_server(smol_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same server with native tool calling (llama-cpp-python's chatml-function-calling,
    which SmolLM2's ChatML template matches): it answers `tools=` with real tool calls."""
    yield from serve(smol_path, tmp_path_factory, "--chat_format", "chatml-function-calling")


def serve(model: Path, tmp_path_factory: pytest.TempPathFactory, *extra: str) -> Iterator[str]:
    """llama-cpp-python's server on the model (one request at a time)."""

    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            SMOL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            str(os.cpu_count() or 2),
            *extra,
        ]

    yield from run_server(argv, tmp_path_factory, "llama_cpp.server")


def run_server(
    argv: Callable[[int], list[str]], tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[str]:
    """Start a server on a free port, wait until it answers /v1/models, stop it after."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv(port), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class ScriptedBackend:
    """Replies from a script, for deterministic control-flow tests (never the only test)."""

    def __init__(
        self,
        replies: Sequence[str | BackendError | Completion],
        name: str = "scripted",
        abilities: Abilities | None = None,
    ) -> None:
        self.replies = list(replies)
        self.name = name
        self.abilities = abilities or Abilities()  # a stand-in for a server says it has slots
        self.calls: list[list[Message]] = []
        self.gens: list[GenerationConfig] = []
        self.options: list[dict[str, Any]] = []  # stop, tools and constraint of each call

    async def describe(self) -> BackendInfo:
        return BackendInfo("scripted", True, True, {"script": self.name}, abilities=self.abilities)

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        self.calls.append([m.copy() for m in messages])
        self.gens.append(gen)
        self.options.append(
            {
                "stop": list(gen.stop) or None,
                "tools": list(gen.tools) or None,
                "constraint": gen.constraint,
            }
        )
        reply = self.replies.pop(0)
        if isinstance(reply, BackendError):
            raise reply
        if isinstance(reply, Completion):
            return reply
        return Completion(
            text=reply,
            usage=Usage(prompt_tokens=10, completion_tokens=5),
            timings=Timings(latency_s=0.01, ttft_s=0.005, decode_tps=100.0),
        )

    async def aclose(self) -> None:
        return None


def tool_reply(*calls: tuple[str, str], text: str = "") -> Completion:
    """A scripted native reply: tool calls as (name, raw JSON arguments)."""
    return Completion(
        text=text,
        usage=Usage(prompt_tokens=10, completion_tokens=5),
        timings=Timings(latency_s=0.01, ttft_s=0.005, decode_tps=100.0),
        tool_calls=tuple(ToolCall(f"call_{i}", n, a) for i, (n, a) in enumerate(calls)),
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (tests/postgres.py): CI must have it, elsewhere a skip."""
    from postgres import cluster, server_bin

    if server_bin() is None or importlib.util.find_spec("psycopg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs PostgreSQL and psycopg (.ci/run installs them)")
        pytest.skip(
            "no PostgreSQL here: apt-get install postgresql; pip install 'slmscope[postgres]'"
        )
    yield from cluster()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database of the session's cluster, for one test."""
    from postgres import fresh_database

    return fresh_database(postgres_server)


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """llama.cpp's own llama-server, which the set-up step built into the slmscope cache
    (scripts/build-llama-server); located here, never built."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "build-llama-server"
    done = subprocess.run(
        [str(script), "--locate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if done.returncode != 0:
        pytest.fail(f"{done.stderr.strip()}: {SETUP_HINT}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def parallel_server(
    smol_path: Path, llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """llama-server with 4 parallel slots on SmolLM2 (2,048 tokens of context each)."""

    def argv(port: int) -> list[str]:
        return [
            str(llama_server_bin), "-m", str(smol_path), "--alias", SMOL, "--host", "127.0.0.1",
            "--port", str(port), "-c", "8192", "--parallel", "4",
            "-t", str(os.cpu_count() or 2), "--no-webui",
        ]  # fmt: skip

    yield from run_server(argv, tmp_path_factory, "llama-server")
