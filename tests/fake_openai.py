"""A small fake OpenAI-compatible server on 127.0.0.1, for the faults a real one can have.

The model name in the request picks the behaviour, so one server serves every fault (and
`server.fail_after(n, kind)` makes every request after the first n behave as `kind`, for a
server that breaks mid-run):
- `good`: a well-formed completion ("positive"), streamed or not;
- `invalid-json`, `html`, `empty-choices`, `cut-short`: broken replies (200, streamed or not);
- `hang`: never answers (until the server is stopped); `slow`: `good`, after 0.5 s;
- anything else: listed by /v1/models only if named in `served`, else a 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVED = ("good", "slow", "invalid-json", "html", "empty-choices", "cut-short", "hang")


def _event(choices: list[dict[str, object]]) -> bytes:
    return b"data: " + json.dumps({"object": "chat.completion.chunk", "choices": choices}).encode()


def _streamed(model: str) -> bytes:
    delta = {"index": 0, "delta": {"content": "positive"}, "finish_reason": None}
    end = {"index": 0, "delta": {}, "finish_reason": "stop"}
    if model == "invalid-json":
        return b"data: {oops\n\n"
    if model == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    if model == "empty-choices":
        return _event([]) + b"\n\n" + b"data: [DONE]\n\n"
    if model == "cut-short":
        return _event([delta]) + b"\n\n"
    return _event([delta]) + b"\n\n" + _event([end]) + b"\n\ndata: [DONE]\n\n"


def _plain(model: str) -> bytes:
    if model == "invalid-json":
        return b"{oops"
    if model == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    choices = [] if model == "empty-choices" else [
        {"index": 0, "message": {"role": "assistant", "content": "positive"},
         "finish_reason": "stop"}
    ]  # fmt: skip
    usage = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    return json.dumps({"object": "chat.completion", "choices": choices, "usage": usage}).encode()


class FakeServer:
    def __init__(self, served: tuple[str, ...] = SERVED) -> None:
        self.served = served
        self.requests: list[dict[str, object]] = []
        self.failing: tuple[int, str] | None = None
        self.stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = {"object": "list", "data": [{"id": m} for m in fake.served]}
                    self._send(200, json.dumps(data).encode(), "application/json")
                else:
                    self._send(404, b"{}", "application/json")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                model = str(body.get("model"))
                if fake.failing and len(fake.requests) > fake.failing[0]:
                    model = fake.failing[1]
                if model == "hang":
                    fake.stopping.wait(30)
                    return
                if model == "slow":
                    fake.stopping.wait(0.5)
                    model = "good"
                if model not in fake.served:
                    error = {"error": {"message": f"model {model!r} not found"}}
                    self._send(404, json.dumps(error).encode(), "application/json")
                elif body.get("stream"):
                    self._send(200, _streamed(model), "text/event-stream")
                else:
                    self._send(200, _plain(model), "application/json")

            def _send(self, status: int, data: bytes, kind: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (a timeout, a killed run): nothing to say

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def fail_after(self, n: int, kind: str | None) -> None:
        """Requests after the first `n` (counting all so far) behave as `kind` (None: heal)."""
        self.failing = None if kind is None else (n, kind)

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def fake_server(served: tuple[str, ...] = SERVED) -> Iterator[FakeServer]:
    server = FakeServer(served)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        time.sleep(0.05)
        yield server
    finally:
        server.stop()
