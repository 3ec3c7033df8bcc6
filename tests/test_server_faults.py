"""Server faults are the server's, never the model's: against a fake OpenAI-compatible server
on 127.0.0.1 (tests/fake_openai.py), each broken reply is a backend error, a run that cannot
work stops before anything is stored, and a run that only met errors says so and fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import fake_server
from slmscope.cli import app
from slmscope.models.base import BadResponse, GenerationConfig
from slmscope.models.openai_compat import OpenAIBackend
from slmscope.models.retry import RetryPolicy
from slmscope.runs import RunSpec, sweep
from slmscope.runs.events import Event, SampleDone

ONCE = RetryPolicy(attempts=1)


BROKEN = [(f, s) for f in ("invalid-json", "html", "empty-choices") for s in (True, False)]


@pytest.mark.parametrize(("fault", "stream"), [*BROKEN, ("cut-short", True)])
def test_a_broken_reply_is_a_backend_error(fault: str, stream: bool) -> None:
    with fake_server() as server:
        backend = OpenAIBackend(server.base_url, fault, stream=stream, retry=ONCE)

        async def go() -> None:
            try:
                await backend.chat([{"role": "user", "content": "Hi"}], GenerationConfig())
            finally:
                await backend.aclose()

        with pytest.raises(BadResponse):
            asyncio.run(go())
        good = OpenAIBackend(server.base_url, "good", stream=stream, retry=ONCE)

        async def fine() -> str:
            try:
                return (
                    await good.chat([{"role": "user", "content": "Hi"}], GenerationConfig())
                ).text
            finally:
                await good.aclose()

        assert asyncio.run(fine()) == "positive"


def spec(server_url: str, model: str = "good") -> RunSpec:
    return RunSpec(
        models=(model,), paradigms=("base",), tasks=("builtin:sentiment",), limit=3,
        base_url=server_url, retries=0,
    )  # fmt: skip


@pytest.mark.parametrize("stream", [True, False])
def test_a_server_that_breaks_mid_run_is_never_scored(tmp_path: Path, stream: bool) -> None:
    out = tmp_path / "run"
    with fake_server() as server:

        def on_event(event: Event) -> None:
            if isinstance(event, SampleDone) and event.done == 1:
                server.fail_after(len(server.requests), "html")

        run = sweep(RunSpec(**{**spec(server.base_url).__dict__, "stream": stream}), out, on_event)
        outcomes = list(run.results().sort_values("sample_id")["outcome"])
        assert outcomes == ["ok", "backend_error", "backend_error"]
        assert run.server_failures() == (0, None)  # one sample was the model's
        server.fail_after(0, None)
        again = sweep(spec(server.base_url), out, retry_failed=True)
        assert again.done == 2 and list(again.results()["outcome"]) == ["ok"] * 3


def test_a_model_the_server_does_not_serve_stops_before_anything(tmp_path: Path) -> None:
    with fake_server() as server:
        done = CliRunner().invoke(app, [
            "run", "-m", "qwen-typo", "--base-url", server.base_url, "-t", "builtin:sentiment",
            "--limit", "2", "--out", str(tmp_path / "run"),
        ])  # fmt: skip
    assert done.exit_code == 2
    assert "does not serve 'qwen-typo'; it serves: good" in done.output
    assert "nothing was run or stored" in done.output
    assert not (tmp_path / "run" / "results.sqlite").exists()
    assert [r for r in server.requests if r.get("model") == "qwen-typo"] == []


def test_a_server_that_never_answers_is_given_up_on_in_time(tmp_path: Path) -> None:
    with fake_server() as server:
        start = time.monotonic()
        done = CliRunner().invoke(app, [
            "run", "-m", "hang", "--base-url", server.base_url, "-t", "builtin:sentiment",
            "--limit", "2", "--request-timeout", "1", "--retries", "1",
            "--out", str(tmp_path / "run"),
        ])  # fmt: skip
        took = time.monotonic() - start
    assert done.exit_code == 2 and "nothing was run or stored" in done.output
    assert "after 2 attempts" in done.output and took < 10
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_a_run_that_met_only_server_errors_fails_and_says_so(tmp_path: Path) -> None:
    with fake_server() as server:
        server.fail_after(1, "empty-choices")  # the preflight passes, every sample then fails
        done = CliRunner().invoke(app, [
            "run", "-m", "good", "--base-url", server.base_url, "-t", "builtin:sentiment",
            "--limit", "2", "--retries", "0", "--out", str(tmp_path / "run"),
        ])  # fmt: skip
    assert done.exit_code == 1, done.output
    assert "all 2 samples of this run ended in a backend error" in done.output
    assert "none with a choice" in done.output
