"""What a server's routes share: the service once it is loaded, the gate, the metrics and the
recorder; how a refusal is made, and what an answered request is counted as."""

from __future__ import annotations

import json
import logging
import os
import signal
import time

from slmscope.errors import UserError
from slmscope.models.base import Backend
from slmscope.paradigms import harness_label
from slmscope.serve.gate import Gate
from slmscope.serve.metrics import Metrics
from slmscope.serve.record import Recorder
from slmscope.serve.service import ServeConfig, Served, Service

log = logging.getLogger("slmscope.serve")


class Refusal(Exception):
    """A request refused before any model call: its HTTP status and OpenAI error body."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code
        self.headers: dict[str, str] = {}


class State:
    """What the routes share: the service once loaded, the gate, metrics and the recorder."""

    def __init__(self, config: ServeConfig, backend: Backend | None) -> None:
        self.config, self.backend = config, backend
        self.service: Service | None = None
        self.failed: str | None = None
        self.gate = Gate(config.max_running, config.max_waiting)
        self.metrics = Metrics(config.model)
        self.recorder: Recorder | None = None

    async def load(self) -> None:
        try:
            service = await Service.open(self.config, self.backend)
            if self.config.record:
                self.recorder = Recorder.open(self.config.record, service)
            self.service = service  # ready only once the recorder is too
            log.info("ready: %s", json.dumps(service.ready()))
        except UserError as err:
            self.failed = str(err)
            log.error("error: %s", err)
            os.kill(os.getpid(), signal.SIGTERM)  # a server that cannot serve stops

    def ready_service(self) -> Service:
        if self.service is None:
            message = f"model failed to load: {self.failed}" if self.failed else "model loading"
            raise Refusal(503, message, "unavailable", "not_ready")
        return self.service


def done(state: State, served: Served, arrived: float) -> None:
    """Count an answered request, and record it where the server records traffic."""
    m, trace = state.metrics, served.trace
    cost = trace.cost()
    harness = harness_label(served.paradigm)
    m.outcomes.labels(m.model, served.paradigm.name, harness, trace.outcome).inc()
    m.prompt_tokens.inc(cost.prompt_tokens)
    m.generation_tokens.inc(cost.completion_tokens)
    if served.first_token_at is not None:
        m.ttft.observe(served.first_token_at - arrived)
    e2e = time.perf_counter() - arrived
    m.e2e.observe(e2e)
    state.gate.took(e2e)
    if served.fallback_taken:
        m.fallbacks.inc()
    if served.routed:
        m.router.labels(m.model, served.arm).inc()
    if state.recorder is not None:
        try:
            state.recorder.write(served)
        except Exception as err:  # the answer stands; the store's fault is the operator's
            state.metrics.unrecorded.inc()
            log.error("error: request %s not recorded: %s", served.request_id, err)
