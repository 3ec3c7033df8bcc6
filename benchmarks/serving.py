"""What `slmscope serve` adds to a request: the same model behind llama-server, asked bare and
through `slmscope serve --paradigm base --base-url` in front of it, side by side in one run.

The bare side is sent exactly the messages the base paradigm sends (its system prompt, the
question, the answer-format line) with the same sampling, streamed as slmscope streams from
its upstream, so both sides cost the model the same; the difference is slmscope's own work
(HTTP, the paradigm, reading the answer, metering, metrics). The two sides alternate, in
rounds, at each number of concurrent clients, after a warm-up that fills llama-server's
prompt cache for both.

    python benchmarks/serving.py [--model smollm2-135m-instruct] [--clients 1 4 16]
                                 [--requests 48] [--rounds 2] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from slmscope.models.catalog import resolve
from slmscope.models.pull import pull
from slmscope.paradigms.prompts import base_messages
from slmscope.serve.protocol import ChatRequest

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    f"A company's revenue was {a:,} in 2023 and {b:,} in 2022. Did it grow? Answer in one line."
    for a, b in [(1784, 1495), (2310, 2450), (980, 760), (15020, 14990), (402, 388), (77, 91)]
] + [
    "In one sentence: what does a rising interest rate do to bond prices?",
    "Name one risk of holding a single stock.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(argv: list[str], ready: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(60)


def bodies(model: str, tokens: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each question as slmscope is asked it, and as its base paradigm asks llama-server."""
    ours, bare = [], []
    for n, q in enumerate(QUESTIONS):
        body = {"model": model, "messages": [{"role": "user", "content": q}], "max_tokens": tokens}
        ours.append(body)
        problem = ChatRequest.model_validate(body).problem(f"q{n}")
        sent = {"temperature": 0.0, "top_p": 0.9, "seed": 0, "stream": True}
        sent |= {"stream_options": {"include_usage": True}}
        bare.append(
            {"model": model, "messages": base_messages(problem), "max_tokens": tokens} | sent
        )
    return ours, bare


async def phase(url: str, asks: list[dict[str, Any]], clients: int, n: int) -> dict[str, float]:
    """`n` requests from `clients` concurrent clients; requests/s and latency percentiles."""
    todo = iter(range(n))
    latencies: list[float] = []
    layer: list[float] = []  # slmscope's side: the time outside its own answer (HTTP, JSON)
    # A new connection per request on both sides: llama-server may close an idle keep-alive
    # connection just as the client reuses it.
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=fresh) as client:

        async def worker() -> None:
            for i in todo:
                body = asks[i % len(asks)]
                start = time.perf_counter()
                async with client.stream("POST", url, json=body) as reply:
                    data = b"".join([part async for part in reply.aiter_bytes()])
                    if reply.status_code != 200:
                        raise SystemExit(f"{url}: HTTP {reply.status_code}")
                latencies.append(time.perf_counter() - start)
                if not body.get("stream"):
                    answered = json.loads(data)["slmscope"]["cost"]["latency_s"]
                    layer.append(latencies[-1] - answered)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=20)
    found = {"rps": n / wall, "p50": statistics.median(latencies), "p95": q[18]}
    return found | ({"layer": statistics.median(layer)} if layer else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    path = pull(resolve(args.model))
    locate = subprocess.run(
        [str(ROOT / "scripts" / "build-llama-server"), "--locate"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if locate.returncode != 0:
        raise SystemExit(f"llama-server is not built: run `make test` once ({locate.stderr})")
    server = locate.stdout.strip().splitlines()[-1]
    slots, threads = 4, str(os.cpu_count() or 2)
    lp, sp = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="slmscope-bench-"))
    bare_url = f"http://127.0.0.1:{lp}/v1/chat/completions"
    ours_url = f"http://127.0.0.1:{sp}/v1/chat/completions"
    llama = [server, "-m", str(path), "--alias", args.model, "--host", "127.0.0.1"]
    llama += ["--port", str(lp), "-c", str(2048 * slots), "--parallel", str(slots)]
    llama += ["-t", threads, "--no-webui"]
    ours = [sys.executable, "-m", "slmscope", "serve", "-m", args.model, "-p", "base"]
    ours += ["--base-url", f"http://127.0.0.1:{lp}/v1", "--port", str(sp), "--slots", str(slots)]
    ours += ["--max-running", "64", "--max-waiting", "256", "--turn-tokens", str(args.tokens)]
    asks, bare = bodies(args.model, args.tokens)
    with (
        process(llama, f"http://127.0.0.1:{lp}/health", logs / "llama-server.log"),
        process(ours, f"http://127.0.0.1:{sp}/ready", logs / "slmscope-serve.log"),
    ):
        for url, sent in ((bare_url, bare), (ours_url, asks)):  # warm-up: every prompt cached
            asyncio.run(phase(url, sent, 1, len(QUESTIONS)))
        print(
            f"{args.model} on {threads} threads, llama-server with {slots} slots, "
            f"{args.requests} requests a phase, {args.rounds} rounds, {args.tokens} tokens"
        )
        print(f"{'clients':>7} {'side':>9} {'req/s':>7} {'p50 s':>7} {'p95 s':>7}")
        for clients in args.clients:
            got: dict[str, list[dict[str, float]]] = {"bare": [], "slmscope": []}
            for _ in range(args.rounds):
                got["bare"].append(asyncio.run(phase(bare_url, bare, clients, args.requests)))
                got["slmscope"].append(asyncio.run(phase(ours_url, asks, clients, args.requests)))
            med = {
                side: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p95")}
                for side, runs in got.items()
            }
            for side, m in med.items():
                print(f"{clients:>7} {side:>9} {m['rps']:7.2f} {m['p50']:7.3f} {m['p95']:7.3f}")
            added = med["slmscope"]["p50"] / med["bare"]["p50"] - 1
            layer = statistics.median(r["layer"] for r in got["slmscope"]) * 1000
            print(
                f"{clients:>7} {'added':>9} p50 {added:+.1%}, "
                f"req/s {med['slmscope']['rps'] / med['bare']['rps'] - 1:+.1%}; "
                f"{layer:.1f} ms a request outside slmscope's own answer (HTTP, JSON)"
            )


if __name__ == "__main__":
    main()
