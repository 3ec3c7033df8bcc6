"""The Backend protocol, the Completion record and the typed backend errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, Protocol, TypedDict, runtime_checkable

from slmscope.errors import ConfigError, UserError
from slmscope.metering.energy import UNAVAILABLE, EnergyReading
from slmscope.metering.usage import Timings, Usage


class Message(TypedDict):
    """A chat message. In native tool mode an assistant message may carry `tool_calls` (OpenAI
    shape) and a `tool` message answers one of them by `tool_call_id`."""

    role: str
    content: str
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for in native tool mode; `arguments` is the raw JSON
    text the model wrote (parsed, tolerantly, by the paradigm's protocol)."""

    id: str
    name: str
    arguments: str

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Completion:
    """One model reply: its text, token usage, timings and the backend's own raw usage."""

    text: str
    usage: Usage
    timings: Timings
    finish_reason: str | None = None
    raw_usage: dict[str, Any] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()
    energy: EnergyReading = UNAVAILABLE  # set by a MeteredBackend
    cache_hit: bool = False  # replayed by a CachedBackend, with the cost it had when made


@dataclass(frozen=True)
class Closing:
    """How a reply the token budget is about to cut still ends well-formed: while the whole
    reply so far matches `opened` (a regex: inside an agent's thought, or inside a tool's
    text input), once fewer than `reserve` tokens of the budget are left, the rest of the
    reply follows `grammar` instead. `name` says which part was closed, in the reply's usage."""

    name: str
    opened: str
    grammar: str
    reserve: int


@dataclass(frozen=True)
class Constraint:
    """What a reply may be, as a GBNF grammar (llama.cpp's format, which llama-server takes as
    `grammar` and vLLM's xgrammar reads too); `name` labels it in records.

    `closings` finish a reply early where its free text runs long (see `Closing`); a backend
    that can switch grammars mid-reply (the embedded one) applies them, the first that
    matches; others may ignore them, and the reply may then be cut."""

    name: str
    grammar: str
    closings: tuple[Closing, ...] = ()


@dataclass(frozen=True)
class GenerationConfig:
    """Everything one call is generated with. A run sets the sampling (the study: temperature 0,
    top_p 0.9); a paradigm adds per call what its protocol needs (stop sequences, native tool
    specs, a constraint) with `dataclasses.replace`."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI function specs: native tool calling
    tool_choice: str = "auto"  # with tools: "auto", or "none" where only an answer may come
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        """Settings no backend can honour are refused where they are made, in one line."""
        problems = []
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            problems.append(f"max_tokens must be a whole number >= 1, not {self.max_tokens!r}")
        if not self.temperature >= 0:  # also refuses NaN
            problems.append(f"temperature must be >= 0, not {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], not {self.top_p!r}")
        if problems:
            raise ConfigError("generation settings: " + "; ".join(problems))

    def sampling(self) -> dict[str, Any]:
        """The run-level settings, as they enter a run's settings hash."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Abilities:
    """What a backend can do, as its model card says before it is opened (`ModelCard.
    abilities`) and its `describe()` after: callers ask this, never the backend's type."""

    parallel_slots: bool = False  # serves several requests at once (a server's slots)
    native_tools: bool = False  # OpenAI `tools=` (a server may still refuse when asked)
    grammar: bool = False  # GBNF constraints
    grammar_checked: bool = False  # known to apply them (else a probe checks before a run)
    json_schema: bool = False  # JSON-schema constraints (`response_format`)
    prefix_reuse: bool = False  # keeps the KV cache of a prompt's shared prefix
    in_process: bool = False  # runs in this process (its work is this process's CPU time)
    needs_weights: bool = False  # a local file that must be pulled before it can open


@dataclass(frozen=True)
class BackendInfo:
    """What a backend says of itself: the run record, the energy meter and the response cache
    read it, so that no caller needs to know the concrete backend."""

    kind: str  # "llamacpp", "openai", ...
    in_process: bool  # its work is this process's CPU time
    same_machine: bool  # its work is visible to this machine's energy counters
    identity: Mapping[str, Any]  # what makes its answers its own: file hash, server, versions
    memory: Mapping[str, Any] = field(default_factory=dict)
    abilities: Abilities = field(default_factory=Abilities)


@runtime_checkable
class Backend(Protocol):
    """Anything that answers chat messages. `name` identifies the backend and model in records."""

    name: str

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        """One reply. `gen.tools` asks for native tool calling (a backend without it raises
        ToolsUnsupported); `gen.constraint` for constrained decoding (ConstraintUnsupported)."""
        ...

    async def describe(self) -> BackendInfo:
        """Identity, locality and memory (may load the model)."""
        ...

    async def aclose(self) -> None: ...


NATIVE_TOOLS_HINT = (
    "its chat template has no tool format the embedded backend reads (`<tool_call>` JSON, as "
    "Qwen2.5's); use --tool-mode tags, or serve the model with tool support (vLLM "
    "--enable-auto-tool-choice, llama-server --jinja) and pass --base-url"
)


class BackendError(UserError):
    """Base of every backend failure; `where` names the backend and model."""

    transient = False

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class BackendUnavailable(BackendError):
    """The backend cannot be reached or loaded (dead server, missing library, missing file)."""

    transient = True


class BackendTimeout(BackendError):
    """The call took longer than its time limit."""

    transient = True


class BudgetSpent(BackendError):
    """A request's token budget (over all its calls) is spent: no further call is made."""


class ContextOverflow(BackendError):
    """The prompt (plus the tokens asked for) does not fit the model's context window."""


class ToolsUnsupported(BackendError):
    """Native tool calling was asked of a backend that has none."""


class ConstraintUnsupported(BackendError):
    """Constrained decoding was asked of a backend that has no way to apply it."""


class ModelNotServed(BackendError):
    """The server answers, but does not serve the model asked for."""


class BadResponse(BackendError):
    """The backend answered, but with something that is not a usable completion."""
