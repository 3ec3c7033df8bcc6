"""Sweep figures, each a ratio measured side by side in this one run (these machines are noisy).

1. Throughput at concurrency 1, 2, 4 and 8 against llama.cpp's `llama-server --parallel 4`
   (built by scripts/build-llama-server), the same model and samples (base paradigm); then
   against a loopback endpoint whose replies take 0.25 s and no CPU, where only the client's
   own concurrency can show (on 2 cores the real server's decoding is the bottleneck).
2. The same prompts through Inspect (`inspect_ai.eval`, max_connections 4) against the same
   endpoints: samples/s of each at equal concurrency (both timed end to end, start-up
   included).
3. Resume overhead: running the finished sweep again (every cell skipped) against running it.
4. Cache: the same sweep into a new directory with `cache=True`, second time against first.
5. Ray: the same sweep with `ray="local"` (Ray's start-up included) against in process.
6. The size of the command line before (cli.py at 4bf97fe) and after (the cli/ package).

    python benchmarks/sweep.py [--samples 48] [--rounds 2] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from slmscope.home import models_dir
from slmscope.models.base import GenerationConfig
from slmscope.models.catalog import resolve
from slmscope.models.pull import pull
from slmscope.paradigms.prompts import base_messages
from slmscope.runs import RunSpec, sweep
from slmscope.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("builtin:sentiment", "builtin:headlines", "builtin:stock_movement")


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


@contextmanager
def llama_server(model: Path, alias: str, slots: int, *extra: str) -> Iterator[str]:
    binary = subprocess.run(
        [str(ROOT / "scripts" / "build-llama-server")], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    port = 18000 + os.getpid() % 1000
    proc = subprocess.Popen(
        [binary, "-m", str(model), "--alias", alias, "--host", "127.0.0.1", "--port", str(port),
         "-c", str(2048 * slots), "--parallel", str(slots), "-t", str(os.cpu_count() or 2),
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def spec_for(model: str, samples: int, **changes: object) -> RunSpec:
    per_set = max(1, samples // len(TASKS))
    gen = GenerationConfig(max_tokens=48)
    return RunSpec(models=(model,), paradigms=("base",), tasks=TASKS, limit=per_set, gen=gen,
                   **changes)  # type: ignore[arg-type]  # fmt: skip


def inspect_rate(base_url: str, model: str, samples: int, connections: int) -> float | None:
    """Samples/s of Inspect on the very prompts slmscope's base paradigm sends."""
    try:
        from inspect_ai import Task
        from inspect_ai import eval as inspect_eval
        from inspect_ai.dataset import Sample
        from inspect_ai.model import ChatMessageSystem, ChatMessageUser
        from inspect_ai.solver import generate
    except ImportError:
        print("inspect: not installed (pip install inspect-ai); left out")
        return None
    tasks = [t for ref in TASKS for t in load_tasks(ref, limit=max(1, samples // len(TASKS))).tasks]
    dataset = []
    for task in tasks:
        messages = base_messages(task)  # what slmscope's base paradigm sends
        dataset.append(Sample(input=[
            ChatMessageSystem(content=m["content"]) if m["role"] == "system"
            else ChatMessageUser(content=m["content"]) for m in messages
        ]))  # fmt: skip
    os.environ.setdefault("OPENAI_API_KEY", "none")
    log_dir = Path(tempfile.mkdtemp(prefix="inspect-logs-"))
    start = time.perf_counter()
    logs = inspect_eval(
        Task(dataset=dataset, solver=generate()),
        model=f"openai/{model}",
        model_base_url=base_url,
        model_args={"responses_api": False},  # chat completions, as slmscope sends
        max_connections=connections,
        max_tokens=48,
        temperature=0.0,
        display="none",
        log_dir=str(log_dir),
    )
    spent = time.perf_counter() - start
    failed = [log.error for log in logs if log.status != "success"]
    sample_failed = any(s.error for log in logs for s in log.samples or [])
    shutil.rmtree(log_dir, ignore_errors=True)
    if failed or sample_failed:
        reason = failed[0].message if failed and failed[0] else "a sample failed"
        print(f"inspect: the eval did not succeed ({reason[:200]}); its rate is left out")
        return None
    return len(dataset) / spent


DELAY_S = 0.25


@contextmanager
def slow_endpoint() -> Iterator[str]:
    """An OpenAI-compatible endpoint on loopback that answers every chat request after DELAY_S,
    many at once (one thread each), and computes nothing."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "slow", "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(DELAY_S)
            message = {"role": "assistant", "content": "neutral"}
            self._send({
                "id": "slow", "object": "chat.completion", "created": int(time.time()),
                "model": "slow", "choices": [
                    {"index": 0, "message": message, "finish_reason": "stop"}
                ], "usage": {"prompt_tokens": 60, "completion_tokens": 1, "total_tokens": 61},
            })  # fmt: skip

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def concurrency_rates(
    url: str, model: str, samples: int, rounds: int, work: Path, **changes: object
) -> None:
    """slmscope at concurrency 1, 2, 4 and 8 and Inspect at 4 connections against one endpoint:
    both clients warmed once, then the arms alternated round by round so that the machine's
    drift falls on all of them alike; a rate is samples over summed time."""
    n = max(1, samples // len(TASKS)) * len(TASKS)
    sweep(spec_for(model, len(TASKS), base_url=url, **changes), work / "warm")
    inspect_rate(url, model, len(TASKS), 4)
    spent = dict.fromkeys((1, 2, 4, 8), 0.0)
    theirs_spent: float | None = 0.0
    for r in range(rounds):
        for c in spent:
            spec = spec_for(model, samples, base_url=url, concurrency=c, **changes)
            spent[c] += timed(partial(sweep, spec, work / f"c{c}-{r}"))
        rate = inspect_rate(url, model, samples, 4)
        theirs_spent = None if rate is None or theirs_spent is None else theirs_spent + n / rate
    rates = {c: n * rounds / t for c, t in spent.items()}
    for c, rate in rates.items():
        print(f"  slmscope concurrency {c}: {rate:.2f} samples/s "
              f"({rate / rates[1]:.2f}x concurrency 1)")  # fmt: skip
    if theirs_spent is not None:
        theirs = n * rounds / theirs_spent
        print(f"  inspect max_connections 4: {theirs:.2f} samples/s; "
              f"slmscope/inspect at 4: {rates[4] / theirs:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    card = resolve(args.model)
    path = pull(card)
    work = Path(tempfile.mkdtemp(prefix="slmscope-bench-"))
    n = max(1, args.samples // len(TASKS)) * len(TASKS)
    print(f"model {args.model}, {n} samples (base paradigm, 48 new tokens), {os.cpu_count()} cores")

    with llama_server(path, args.model, slots=4) as url:
        print("against llama-server --parallel 4 (compute-bound: the 2 cores do the decoding)")
        concurrency_rates(url, args.model, args.samples, args.rounds, work / "server")
    with slow_endpoint() as url:
        print(f"against an endpoint whose every reply takes {DELAY_S} s and no CPU (what a busy "
              "GPU server is to its client: only the client's own concurrency counts)")  # fmt: skip
        concurrency_rates(url, "slow", args.samples, args.rounds, work / "slow", stream=False)

    embedded = spec_for(args.model, args.samples)
    first = timed(lambda: sweep(embedded, work / "e"))
    again = timed(lambda: sweep(embedded, work / "e"))
    print(f"resume of a finished sweep: {again:.2f} s against {first:.2f} s "
          f"({again / first:.3f}x)")  # fmt: skip
    # The response cache is shared by every run on the machine: a home of its own (the weights
    # linked in) keeps the first of these sweeps cold whatever ran before.
    home = os.environ.get("SLMSCOPE_HOME")
    (work / "home").mkdir()
    (work / "home" / "models").symlink_to(models_dir())
    os.environ["SLMSCOPE_HOME"] = str(work / "home")
    cold = timed(lambda: sweep(embedded, work / "k1", cache=True))
    warm = timed(lambda: sweep(embedded, work / "k2", cache=True))
    if home is None:
        del os.environ["SLMSCOPE_HOME"]
    else:
        os.environ["SLMSCOPE_HOME"] = home
    print(f"cache: repeated sweep {warm:.2f} s against {cold:.2f} s ({cold / warm:.1f}x faster)")
    in_process = timed(lambda: sweep(embedded, work / "p"))
    on_ray = timed(lambda: sweep(embedded, work / "r", ray="local"))
    print(f"ray local: {on_ray:.2f} s against in process {in_process:.2f} s "
          f"({on_ray / in_process:.2f}x, Ray start-up included)")  # fmt: skip

    before = subprocess.run(["git", "-C", str(ROOT), "show", "4bf97fe:src/slmscope/cli.py"],
                            capture_output=True, text=True).stdout.count("\n")  # fmt: skip
    files = sorted((ROOT / "src" / "slmscope" / "cli").glob("*.py"))
    sizes = {f.name: f.read_text().count("\n") for f in files}
    print(f"command line: cli.py {before} lines before; after, {sum(sizes.values())} lines in "
          f"{len(files)} files, the largest {max(sizes.values())} ({max(sizes, key=sizes.get)})")  # type: ignore[arg-type]  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
