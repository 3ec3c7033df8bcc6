"""The HTTP face of a served configuration: OpenAI's routes (`/v1/chat/completions`, streamed
or not, and `/v1/models`), `/health`, `/ready` and `/metrics`, with what operators expect of
vLLM or llama-server: API keys (401), a body limit (413), a bounded queue (429 with
Retry-After once full), per-request budgets, and a graceful end on SIGTERM (uvicorn stops
accepting and finishes the requests in flight).

The model loads in the background once the server is up: `/health` answers at once, `/ready`
and the `/v1` routes answer 503 until it is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from slmscope.errors import UserError
from slmscope.models.base import Backend
from slmscope.serve.gate import Full, Place
from slmscope.serve.metrics import CONTENT_TYPE
from slmscope.serve.protocol import ChatRequest, completion_body, error_body
from slmscope.serve.service import ServeConfig, Served, Service
from slmscope.serve.state import Refusal, State, done
from slmscope.serve.stream import finish_reason, sse_events, unanswerable, usage_of
from slmscope.tasks.record import Problem

log = logging.getLogger("slmscope.serve")
BODY_SECONDS = 30.0  # a body not fully sent by then gets a 408
WATCH_SECONDS = 0.5  # how often a non-streamed request checks that its client is still there
CLOSED = 499  # the client closed the connection first (as nginx counts it)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON in ASCII: model output may hold anything, a lone surrogate included."""
    return Response(json.dumps(body), status, headers, media_type="application/json")


def create_app(config: ServeConfig, backend: Backend | None = None) -> FastAPI:
    """The app for `config`; `backend` replaces the one the config names (tests)."""
    state = State(config, backend)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load())
        yield
        loading.cancel()
        if state.recorder is not None:
            state.recorder.close()
        if state.service is not None:
            await state.service.aclose()

    app = FastAPI(title="slmscope", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.slmscope = state

    def refused(err: Refusal) -> Response:
        state.metrics.refuse(err.status)
        return json_response(error_body(str(err), err.kind, err.code), err.status, err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> Response:
        return refused(Refusal(err.status_code, str(err.detail), "invalid_request_error"))

    @app.exception_handler(Exception)
    async def crashed(_: Request, err: Exception) -> Response:
        log.exception("error: a bug in slmscope answered a request with 500")
        return refused(Refusal(500, f"internal error: {type(err).__name__}", "server_error"))

    def authorize(request: Request) -> None:
        if not config.api_keys:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer"
        given = token.strip().encode("latin-1") if bearer else b""  # the header's own bytes
        if not any(secrets.compare_digest(given, key.encode()) for key in config.api_keys):
            raise Refusal(
                401,
                "a valid API key is required (Authorization: Bearer KEY)",
                "invalid_request_error",
                "invalid_api_key",
            )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        if state.service is None:
            status = "failed" if state.failed else "loading"
            return json_response({"status": status, "error": state.failed}, 503)
        return json_response({"status": "ready", **state.service.ready(), **state.gate.counts()})

    @app.get("/metrics")
    async def metrics() -> Response:
        state.metrics.running.set(state.gate.running)
        state.metrics.waiting.set(state.gate.waiting)
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            authorize(request)
        except Refusal as err:
            return refused(err)
        card = {"id": config.model, "object": "model", "created": 0, "owned_by": "slmscope"}
        return json_response({"object": "list", "data": [card]})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        arrived = time.perf_counter()
        try:
            authorize(request)
            body = await read_body(request, config.max_body_bytes)
            asked = parse(body)
            service = state.ready_service()
            check(asked, service)
            problem = asked.problem(f"chatcmpl-{uuid.uuid4().hex}")
        except Refusal as err:
            return refused(err)
        except ValueError as err:
            return refused(Refusal(400, str(err), "invalid_request_error"))
        except ClientDisconnect:
            return refused(Refusal(CLOSED, "the client went away", "invalid_request_error"))
        try:
            place = state.gate.enter()
        except Full as full:
            busy = Refusal(
                429, "the server is at capacity; retry later", "rate_limit_exceeded", "busy"
            )
            busy.headers["Retry-After"] = str(full.retry_after)
            return refused(busy)
        if asked.stream:
            return StreamingResponse(
                sse_events(service, asked, problem, place, state, arrived),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                background=BackgroundTask(place.leave),  # a client gone before the first byte
            )
        try:
            served = await watched(request, service, asked, problem, place)
        except UserError as err:  # the backend is gone: nothing was answered
            return refused(Refusal(503, str(err), "unavailable", "backend_unavailable"))
        if served is None:
            return refused(Refusal(CLOSED, "the client went away", "invalid_request_error"))
        done(state, served, arrived)
        why = unanswerable(served)
        if why is not None:
            return json_response({**error_body(*why), "slmscope": served.extension()}, 400)
        body_out = completion_body(
            problem.id,
            config.model,
            served.trace.final_answer or "",
            finish_reason(served),
            usage_of(served),
            served.extension(),
        )
        return json_response(body_out)

    return app


async def watched(
    request: Request, service: Service, asked: ChatRequest, problem: Problem, place: Place
) -> Served | None:
    """The answer, or None where the client went away first: its agent is stopped then (a
    model call under way on the embedded backend still runs to its end)."""
    async with place:
        task = asyncio.create_task(service.answer(asked, problem))
        try:
            while True:
                finished, _ = await asyncio.wait({task}, timeout=WATCH_SECONDS)
                if finished:
                    return task.result()
                if await request.is_disconnected():
                    return None
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def read_body(request: Request, limit: int) -> bytes:
    too_big = Refusal(413, f"the request body is over {limit} bytes", "invalid_request_error")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        raise Refusal(
            408, f"the request body took over {BODY_SECONDS:g} s", "invalid_request_error"
        ) from None
    return b"".join(chunks)


def parse(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ValueError(f"{where}: {first.get('msg', 'invalid')}{more}") from None


def check(asked: ChatRequest, service: Service) -> None:
    if asked.model != service.config.model:
        raise Refusal(
            404,
            f"model {asked.model!r} is not served here; this server serves "
            f"{service.config.model!r}",
            "invalid_request_error",
            "model_not_found",
        )
    if asked.tools:
        why = (
            "the agents here call the server's own tools"
            if service.uses_tools()
            else "this server answers directly and runs no client-side tools"
        )
        raise Refusal(
            400,
            f"client-side tools are not accepted: {why}",
            "invalid_request_error",
            "tools_not_supported",
        )
