"""`slmscope serve`: the chosen configuration behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import typer

from slmscope.cli.app import app, pull_progress, say, user_errors
from slmscope.errors import ConfigError
from slmscope.paradigms import DEFAULT_HARNESS, serving_arms
from slmscope.paradigms.router import load_router

KEYS_ENV = "SLMSCOPE_SERVE_API_KEYS"  # comma-separated, where --api-key is not given
CONNECTION_SPARE = 32


@app.command()
def serve(
    model: str = typer.Option(..., "--model", "-m", help="Model id, .gguf path or served name."),
    paradigm: str = typer.Option(
        "single+fallback", "--paradigm", "-p", help="The arm answered with, without a router."
    ),
    harness: str = typer.Option(DEFAULT_HARNESS, help="The agents' harness."),
    router: Path | None = typer.Option(
        None, help="A router (`slmscope route fit`): picks the arm per request."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    api_key: list[str] = typer.Option(
        [], help=f"A key clients must send (repeatable; else ${KEYS_ENV}, comma-separated)."
    ),
    base_url: str | None = typer.Option(
        None, help="An OpenAI-compatible server (llama-server, vLLM) that runs the model."
    ),
    slots: int = typer.Option(1, min=1, help="Calls at once to a server with parallel slots."),
    max_running: int = typer.Option(4, min=1, help="Requests answered at once."),
    max_waiting: int = typer.Option(32, min=0, help="Requests queued beyond those; then 429."),
    turn_tokens: int = typer.Option(256, min=1, help="Tokens one model call may generate."),
    request_tokens: int = typer.Option(
        16_000, min=1, help="Tokens (prompt and completion) over all calls of one request."
    ),
    request_seconds: float = typer.Option(300.0, min=0.1, help="A request's wall-time budget."),
    max_body_bytes: int = typer.Option(1_000_000, min=1024, help="Larger bodies get a 413."),
    n_ctx: int = typer.Option(4096, help="Context window of the embedded backend."),
    threads: int | None = typer.Option(None, help="CPU threads of the embedded backend."),
    record: str | None = typer.Option(
        None, help="Record served requests in this run folder (or postgresql:// URL)."
    ),
) -> None:
    """Serve a paradigm (or a router over arms) behind /v1/chat/completions."""
    with user_errors():
        try:
            import uvicorn

            from slmscope.serve.app import create_app
            from slmscope.serve.record import Recorder
            from slmscope.serve.service import ServeConfig
        except ImportError as err:
            raise ConfigError(
                f"slmscope serve needs the serve extra ({err.name} is missing): "
                "pip install 'slmscope[serve]'"
            ) from None
        from slmscope.models.catalog import resolve
        from slmscope.models.pull import pull

        keys = tuple(api_key) or tuple(
            k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()
        )
        config = ServeConfig(
            model=model,
            paradigm=paradigm,
            harness=harness,
            router=router,
            base_url=base_url,
            upstream_key=os.environ.get("SLMSCOPE_API_KEY"),
            n_ctx=n_ctx,
            n_threads=threads or os.cpu_count(),
            slots=slots,
            max_running=max_running,
            max_waiting=max_waiting,
            turn_tokens=turn_tokens,
            request_tokens=request_tokens,
            request_seconds=request_seconds,
            max_body_bytes=max_body_bytes,
            api_keys=keys,
            record=record,
        )
        # What can be refused before the model loads is refused here, in one line.
        routed = load_router(router) if router else None
        if routed is not None and routed.model and routed.model != model:
            raise ConfigError(f"{router}: fitted on {routed.model!r}, not on the served {model!r}")
        serving_arms(paradigm, harness, routed.arms if routed else ())
        if record:
            Recorder.check(record)
        card = resolve(model, base_url=base_url)
        if card.abilities().needs_weights and not card.is_installed():
            progress, report = pull_progress()
            with progress:
                pull(card, progress=report)
        if not keys and host not in ("127.0.0.1", "localhost", "::1"):
            say(f"warning: serving on {host} with no API key", err=True)
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        # On SIGTERM every request admitted is answered: the queue drains at max_running a
        # time, each request within its wall-time budget.
        drain = request_seconds * (1 + math.ceil(max_waiting / max_running)) + 30
        uvicorn.run(
            create_app(config),
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=math.ceil(drain),
            # Connections beyond the admitted requests (and a few for /health, /metrics) get
            # a 503 from uvicorn: slow clients cannot hold every file descriptor.
            limit_concurrency=max_running + max_waiting + CONNECTION_SPARE,
        )
