"""Any OpenAI-compatible chat server: vLLM, llama.cpp's llama-server, Ollama, SGLang, TGI.

Streams by default so that time to first token is measured on the client. Token counts are the
server's own (`stream_options.include_usage`); where a server sends none, slmscope counts the
streamed chunks itself (one chunk per token, as these servers stream) and estimates the prompt
at four characters a token, and the Usage says so with `source="counted"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from slmscope.metering.usage import Timings, Usage, estimate_tokens
from slmscope.models.base import (
    BackendError,
    BackendInfo,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    Completion,
    ConstraintUnsupported,
    ContextOverflow,
    GenerationConfig,
    Message,
    ModelNotServed,
    ToolCall,
)
from slmscope.models.catalog import SERVED_ABILITIES
from slmscope.models.retry import RetryPolicy, with_retries

_OVERFLOW_HINTS = (
    "context length",
    "context window",
    "context_length",
    "maximum context",
    "too many tokens",
    "exceeds the context",
    "exceed context",
)


GRAMMAR_STYLES = ("grammar", "structured_outputs", "guided_grammar")


def same_machine(base_url: str) -> bool:
    """Whether the server at base_url runs on this machine (loopback or this host's name), so
    that this machine's energy counters see its work."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", socket.gethostname().lower(), socket.getfqdn().lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _arguments(value: Any) -> str:
    """Tool-call arguments as text: servers send a JSON string; a few send the object itself."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server at `base_url` (ending in /v1)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        stream: bool = True,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}@{self.base_url}"
        self.stream = stream
        self.retry = retry or RetryPolicy()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.grammar_style: str | None = None  # how this server takes a grammar, once found

    @property
    def _client(self) -> httpx.AsyncClient:
        """One connection pool per event loop (a pool cannot outlive the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]
            self._clients[loop] = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
        return self._clients[loop]

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def server_info(self) -> dict[str, Any]:
        """What the server says of itself, from whichever of the usual endpoints answers
        (vLLM /version, llama-server /props, every server /v1/models); never raises."""
        root = self.base_url.removesuffix("/v1")
        info: dict[str, Any] = {}
        for key, url in (
            ("version", f"{root}/version"),
            ("props", f"{root}/props"),
            ("models", f"{self.base_url}/models"),
        ):
            try:
                resp = await self._client.get(url, timeout=3.0)
                if resp.status_code == 200:
                    data = resp.json()
                    info[key] = data.get("build_info") or data.get("version") or data
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
        return {k: v for k, v in info.items() if len(json.dumps(v, default=str)) < 2000}

    async def preflight(self) -> None:
        """Before the first sample: the server answers, serves this model (where it lists its
        models), and replies with a well-formed completion (streamed, where streaming is on).
        A BackendError says which, in one line."""
        try:
            resp = await self._client.get(f"{self.base_url}/models", timeout=10.0)
        except httpx.HTTPError as err:
            raise self._transport_error(err) from err
        listed = None
        if resp.status_code == 200:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                listed = [str(m["id"]) for m in resp.json()["data"]]
        if listed is not None and self.model not in listed:
            raise ModelNotServed(
                f"the server does not serve {self.model!r}; it serves: "
                + (", ".join(listed[:10]) or "nothing"),
                where=self.name,
            )
        await self.chat([{"role": "user", "content": "Say ok."}], GenerationConfig(max_tokens=1))

    async def describe(self) -> BackendInfo:
        """The server as it describes itself, the model name it serves, its locality."""
        identity = {
            "base_url": self.base_url,
            "model": self.model,
            "server": await self.server_info(),
        }
        return BackendInfo(
            "openai", False, same_machine(self.base_url), identity, abilities=SERVED_ABILITIES
        )

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": gen.max_tokens,
            "temperature": gen.temperature,
            "top_p": gen.top_p,
            "stream": self.stream,
        }
        if gen.stop:
            body["stop"] = list(gen.stop)
        if gen.seed is not None:
            body["seed"] = gen.seed
        if gen.tools:
            body["tools"] = list(gen.tools)
            body["tool_choice"] = gen.tool_choice
        if gen.constraint is not None:
            body.update(await self._grammar_fields(gen.constraint.grammar))
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        call = self._streamed if self.stream else self._plain
        return await with_retries(lambda: call(body), self.retry)

    async def _grammar_fields(self, grammar: str) -> dict[str, Any]:
        """The request fields that carry a GBNF grammar to this server, found once by asking it
        for a reply that only an obeyed grammar can give (llama-server and llama-cpp-python's
        server take `grammar`; vLLM `structured_outputs`, or `guided_grammar` before 0.10; a
        server that ignores them all cannot run the constrained harness)."""
        if self.grammar_style is None:
            self.grammar_style = await self._find_grammar_style()
        if self.grammar_style == "structured_outputs":
            return {"structured_outputs": {"grammar": grammar}}
        return {self.grammar_style: grammar}

    async def _find_grammar_style(self) -> str:
        probe = 'root ::= "zq" [0-9] [0-9] "zq"'
        for style in GRAMMAR_STYLES:
            body: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
                "temperature": 0.0,
                "stream": False,
            }
            body.update(
                {"structured_outputs": {"grammar": probe}}
                if style == "structured_outputs"
                else {style: probe}
            )
            try:
                resp = await self._client.post(f"{self.base_url}/chat/completions", json=body)
                text = resp.json()["choices"][0]["message"].get("content") or ""
            except httpx.HTTPError as err:
                raise self._transport_error(err) from err
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                continue
            if re.fullmatch(r"zq[0-9]{2}zq", text.strip()):
                return style
        raise ConstraintUnsupported(
            "the server obeys none of the grammar fields tried "
            f"({', '.join(GRAMMAR_STYLES)}); the constrained harness needs llama-server, "
            "llama-cpp-python's server or vLLM",
            where=self.name,
        )

    async def _plain(self, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        try:
            resp = await self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise self._transport_error(err) from err
        end = time.perf_counter()
        self._raise_for_status(resp.status_code, resp.text)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            calls = tuple(
                ToolCall(
                    str(call.get("id") or f"call_{n}"),
                    str(call["function"]["name"]),
                    _arguments(call["function"].get("arguments")),
                )
                for n, call in enumerate(choice["message"].get("tool_calls") or [])
            )
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise BadResponse(f"unexpected reply: {resp.text[:200]!r}", where=self.name) from err
        raw = data.get("usage") or {}
        usage = self._usage(raw, body, text, chunks=None)
        return Completion(
            text=text,
            usage=usage,
            timings=Timings(latency_s=end - start, ttft_s=None, decode_tps=None),
            finish_reason=choice.get("finish_reason"),
            raw_usage=raw,
            tool_calls=calls,
        )

    async def _streamed(self, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        chunks = 0
        raw: dict[str, Any] = {}
        finish: str | None = None
        calls: dict[int, dict[str, str]] = {}  # tool-call fragments by index
        other: list[str] = []  # what came that is not an event (an HTML page, a JSON body)
        events = choices = 0
        ended = False  # [DONE], or a finish reason: a stream that stops short is no reply
        try:
            async with self._client.stream(
                "POST", f"{self.base_url}/chat/completions", json=body
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    self._raise_for_status(resp.status_code, resp.text)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        if line.strip() and not line.startswith((":", "event:", "id:", "retry:")):
                            other.append(line)
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        ended = True
                        break
                    try:
                        event = json.loads(payload)
                    except ValueError as err:
                        raise BadResponse(
                            f"bad stream event {payload[:200]!r}", where=self.name
                        ) from err
                    if not isinstance(event, dict):
                        raise BadResponse(f"bad stream event {payload[:200]!r}", where=self.name)
                    events += 1
                    if event.get("usage"):
                        raw = event["usage"]
                    for choice in event.get("choices") or []:
                        choices += 1
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            first = first or time.perf_counter()
                            parts.append(content)
                            chunks += 1
                        for frag in (choice.get("delta") or {}).get("tool_calls") or []:
                            first = first or time.perf_counter()
                            chunks += 1
                            self._add_fragment(calls, frag)
                        finish = choice.get("finish_reason") or finish
                        ended = ended or finish is not None
        except httpx.HTTPError as err:
            raise self._transport_error(err) from err
        self._check_stream(events, choices, ended, other)
        end = time.perf_counter()
        text = "".join(parts)
        usage = self._usage(raw, body, text, chunks=chunks)
        return Completion(
            text=text,
            usage=usage,
            timings=Timings.measure(start, first, end, usage.completion_tokens),
            finish_reason=finish,
            raw_usage=raw,
            tool_calls=tuple(
                ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"])
                for i, c in sorted(calls.items())
            ),
        )

    def _check_stream(self, events: int, choices: int, ended: bool, other: list[str]) -> None:
        """A reply that is not a well-formed completion stream is the server's fault, never the
        model's outcome: no event at all (an HTML page, a plain JSON body), events without a
        single choice, or a stream that stopped before its end."""
        if events == 0:
            said = " ".join(other)[:200] or "nothing"
            raise BadResponse(f"the reply is not an event stream: {said!r}", where=self.name)
        if choices == 0:
            raise BadResponse(f"{events} stream event(s), none with a choice", where=self.name)
        if not ended:
            raise BadResponse("the stream stopped before its end ([DONE])", where=self.name)

    def _add_fragment(self, calls: dict[int, dict[str, str]], frag: Any) -> None:
        """Join a streamed tool-call fragment (id and name come once, arguments in pieces)."""
        if not isinstance(frag, dict):
            raise BadResponse(f"bad tool-call fragment {frag!r:.200}", where=self.name)
        call = calls.setdefault(
            int(frag.get("index") or 0), {"id": "", "name": "", "arguments": ""}
        )
        function = frag.get("function") or {}
        call["id"] = call["id"] or str(frag.get("id") or "")
        call["name"] = call["name"] or str(function.get("name") or "")
        call["arguments"] += _arguments(function.get("arguments"))

    @staticmethod
    def _usage(raw: dict[str, Any], body: dict[str, Any], text: str, chunks: int | None) -> Usage:
        if raw.get("prompt_tokens") is not None and raw.get("completion_tokens") is not None:
            details = raw.get("prompt_tokens_details") or {}
            return Usage(
                prompt_tokens=int(raw["prompt_tokens"]),
                completion_tokens=int(raw["completion_tokens"]),
                cached_tokens=int(details.get("cached_tokens") or 0),
                source="backend",
            )
        prompt_chars = sum(len(m["content"]) for m in body["messages"])
        completion = (
            chunks if chunks is not None else max(1, estimate_tokens(len(text))) if text else 0
        )
        return Usage(
            prompt_tokens=max(1, estimate_tokens(prompt_chars)),
            completion_tokens=completion,
            source="counted",
        )

    def _transport_error(self, err: httpx.HTTPError) -> BackendError:
        if isinstance(err, httpx.TimeoutException) and not isinstance(err, httpx.ConnectTimeout):
            return BackendTimeout(f"no complete reply in time ({err!r})", where=self.name)
        return BackendUnavailable(
            f"cannot reach the server ({type(err).__name__}: {err})", where=self.name
        )

    def _raise_for_status(self, status: int, text: str) -> None:
        if status < 400:
            return
        snippet = text[:300]
        if any(hint in text.lower() for hint in _OVERFLOW_HINTS):
            raise ContextOverflow(f"HTTP {status}: {snippet}", where=self.name)
        if status in (408, 429) or status >= 500:
            raise BackendUnavailable(f"HTTP {status}: {snippet}", where=self.name)
        if status in (401, 403):
            raise BackendError(f"HTTP {status}: check the API key ({snippet})", where=self.name)
        raise BadResponse(f"HTTP {status}: {snippet}", where=self.name)
