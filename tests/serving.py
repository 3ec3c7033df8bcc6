"""Helpers for the server's tests: `slmscope serve` as a real process on a free loopback port,
the app in a thread of this process (for scripted backends), and reading /metrics."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from slmscope.models.base import Backend
from slmscope.serve.app import create_app
from slmscope.serve.service import ServeConfig

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def metrics(self) -> dict[str, float]:
        return read_metrics(self.base)


def wait_ready(base: str, alive: object = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise RuntimeError(f"the server exited: {log.read_text()[-3000:] if log else ''}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not get ready: {log.read_text()[-3000:] if log else ''}")


@contextlib.contextmanager
def serve_process(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`slmscope serve ARGS` on a free port (with `env` added to the environment); stopped
    (SIGTERM, then kill) after."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    argv = [sys.executable, "-m", "slmscope", "serve", "--port", str(port), *args]
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, lambda: proc.poll() is None, log)
        yield Server(proc, base, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def serve_in_thread(config: ServeConfig, backend: Backend) -> Iterator[str]:
    """The app on `backend` under a real uvicorn, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, backend), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, thread.is_alive)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def read_metrics(base: str) -> dict[str, float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser, by name and labels."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "model_name")
            found[f"{s.name}{{{labels}}}"] = s.value
    return found


def total(metrics: dict[str, float], prefix: str) -> float:
    """The sum of the samples whose name and labels start with `prefix`."""
    return sum(v for k, v in metrics.items() if k.startswith(prefix))
