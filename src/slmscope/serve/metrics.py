"""The server's Prometheus metrics, named as vLLM names its own with an `slmscope:` prefix, in a
registry of the server's own (two servers in one process do not share counts)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: agents on CPUs take tens of seconds, base on a GPU tens of milliseconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        self.model = model

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ["model_name", *labels], registry=self.registry)

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, ["model_name"], registry=self.registry).labels(model)

        def histogram(name: str, doc: str) -> Any:
            made = Histogram(
                name, doc, ["model_name"], buckets=LATENCY_BUCKETS, registry=self.registry
            )
            return made.labels(model)

        self.running = gauge("slmscope:num_requests_running", "Requests being answered now.")
        self.waiting = gauge("slmscope:num_requests_waiting", "Requests queued for a free place.")
        self.outcomes = counter(
            "slmscope:request_outcome",
            "Requests answered, by the arm (paradigm and harness) that answered and its outcome.",
            "paradigm",
            "harness",
            "outcome",
        )
        self.refused = counter(
            "slmscope:request_refused",
            "Requests refused before any model call, by HTTP status.",
            "status",
        )
        self.router = counter("slmscope:router_choice", "Arms the router chose.", "arm")
        self.prompt_tokens = counter(
            "slmscope:prompt_tokens", "Prompt tokens over all calls."
        ).labels(model)
        self.generation_tokens = counter(
            "slmscope:generation_tokens", "Generated tokens over all calls."
        ).labels(model)
        self.fallbacks = counter(
            "slmscope:fallback_taken",
            "Agent requests answered by the base model after the agent failed.",
        ).labels(model)
        self.unrecorded = counter(
            "slmscope:request_unrecorded",
            "Answered requests the traffic store could not take (see the server's log).",
        ).labels(model)
        self.ttft = histogram(
            "slmscope:time_to_first_token_seconds",
            "From the request's arrival to the first token of its first model call.",
        )
        self.e2e = histogram(
            "slmscope:e2e_request_latency_seconds",
            "From the request's arrival to its answer, before the response is written.",
        )

    def refuse(self, status: int) -> None:
        self.refused.labels(self.model, str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
