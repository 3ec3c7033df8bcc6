"""A run's spec (models x paradigms x task sets x samples): plain data, resolved by plan.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slmscope.metering.energy import DEFAULT_CORE_W, DEFAULT_IDLE_W
from slmscope.models.base import GenerationConfig
from slmscope.models.kv_states import DEFAULT_BUDGET_MB
from slmscope.paradigms.harness import DEFAULT_HARNESS
from slmscope.paradigms.prompts import PROMPT_VERSION
from slmscope.tools.isolation import availability


@dataclass(frozen=True)
class RunSpec:
    models: tuple[str, ...]
    paradigms: tuple[str, ...]
    tasks: tuple[str, ...]
    limit: int | None = None
    seed: int = 0
    gen: GenerationConfig = field(default_factory=GenerationConfig)
    n_ctx: int = 4096
    n_threads: int | None = None
    base_url: str | None = None
    data_dir: str | None = None
    skip_bad_rows: bool = False
    roster: str | None = None  # YAML roster for the multi-agent paradigm
    tool_mode: str = "tags"  # how agents call tools: the tag protocol or native `tools=`
    harnesses: tuple[str, ...] = (DEFAULT_HARNESS,)  # how the agents' protocol is enforced
    stream: bool = True  # served models: stream replies (time to first token is measured)
    request_timeout_s: float = 120.0  # served models: one request's time limit
    retries: int = 2  # served models: a failed request (transient errors only) tried again
    energy: str = "auto"  # energy meter: auto, nvml, rapl, estimate, off
    core_w: float = DEFAULT_CORE_W  # the estimate's active power per busy core
    idle_w: float = DEFAULT_IDLE_W  # the estimate's idle power attributed to the run
    concurrency: int = 1  # requests in flight per served endpoint (embedded models: always 1)
    max_turns: int = 5  # the study's agent budget
    token_budget: int = 16_000  # prompt + completion tokens over all turns of one agent loop
    kv_states_mb: int = DEFAULT_BUDGET_MB  # embedded models: saved KV states (0: none kept)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def settings_tag(self) -> str:
        """A short hash of everything besides the cell itself that changes a sample's result."""
        settings = {
            "gen": self.gen.sampling(),
            "n_ctx": self.n_ctx,
            "prompts": PROMPT_VERSION,
            "roster": Path(self.roster).read_text() if self.roster else None,
            "base_url": self.base_url,
        }
        budgets = {"max_turns": self.max_turns, "token_budget": self.token_budget}
        if budgets != {"max_turns": 5, "token_budget": 16_000}:  # older keys stay as they were
            settings["budgets"] = budgets
        if self.tool_mode != "tags":  # keeps the keys of tag-protocol runs as they were
            settings["tool_mode"] = self.tool_mode
        if self.kv_states_mb and self.base_url is None:  # reuse changes latency, not tokens
            settings["kv_states_mb"] = self.kv_states_mb
        if not availability()[0]:  # agents without the python tool are another configuration
            settings["python_tool"] = "unavailable"
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
