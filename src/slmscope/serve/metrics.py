"""The server's Prometheus metrics, named as vLLM names its own with an `slmscope:` prefix, in a
registry of the server's own (two servers in one process do not share counts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: agents on CPUs take tens of seconds, base on a GPU tens of milliseconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        self.model = model
        r = self.registry
        self.running = Gauge(
            "slmscope:num_requests_running",
            "Requests being answered now.",
            ["model_name"],
            registry=r,
        ).labels(model)
        self.waiting = Gauge(
            "slmscope:num_requests_waiting",
            "Requests queued for a free place.",
            ["model_name"],
            registry=r,
        ).labels(model)
        self.outcomes = Counter(
            "slmscope:request_outcome",
            "Requests answered, by the arm (paradigm and harness) that answered and its outcome.",
            ["model_name", "paradigm", "harness", "outcome"],
            registry=r,
        )
        self.refused = Counter(
            "slmscope:request_refused",
            "Requests refused before any model call, by HTTP status.",
            ["model_name", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "slmscope:prompt_tokens", "Prompt tokens over all calls.", ["model_name"], registry=r
        ).labels(model)
        self.generation_tokens = Counter(
            "slmscope:generation_tokens",
            "Generated tokens over all calls.",
            ["model_name"],
            registry=r,
        ).labels(model)
        self.ttft = Histogram(
            "slmscope:time_to_first_token_seconds",
            "From the request's arrival to the first token of its first model call.",
            ["model_name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(model)
        self.e2e = Histogram(
            "slmscope:e2e_request_latency_seconds",
            "From the request's arrival to its last byte.",
            ["model_name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(model)
        self.fallbacks = Counter(
            "slmscope:fallback_taken",
            "Agent requests answered by the base model after the agent failed.",
            ["model_name"],
            registry=r,
        ).labels(model)
        self.unrecorded = Counter(
            "slmscope:request_unrecorded",
            "Answered requests the traffic store could not take (see the server's log).",
            ["model_name"],
            registry=r,
        ).labels(model)
        self.router = Counter(
            "slmscope:router_choice",
            "Arms the router chose.",
            ["model_name", "arm"],
            registry=r,
        )

    def refuse(self, status: int) -> None:
        self.refused.labels(self.model, str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
