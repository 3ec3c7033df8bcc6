"""Models: the Backend protocol, the embedded llama.cpp and OpenAI-compatible backends, the
catalog of model cards and the pulling of weights."""

from __future__ import annotations

import os

from slmscope.models.base import (
    NATIVE_TOOLS_HINT,
    Backend,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    Completion,
    Constraint,
    ContextOverflow,
    GenerationConfig,
    Message,
    ToolsUnsupported,
)
from slmscope.models.catalog import CATALOG, ModelCard, ServedSource, UnknownModel, resolve
from slmscope.models.kv_states import DEFAULT_BUDGET_MB
from slmscope.models.template_tools import has_tool_format

__all__ = [
    "CATALOG",
    "Backend",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadResponse",
    "Completion",
    "ContextOverflow",
    "GenerationConfig",
    "Message",
    "ModelCard",
    "ServedSource",
    "UnknownModel",
    "check_backend",
    "open_backend",
    "resolve",
]


def open_backend(
    card: ModelCard,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    api_key: str | None = None,
    stream: bool = True,
    timeout_s: float = 120.0,
    retries: int = 2,
    kv_states_mb: int = DEFAULT_BUDGET_MB,
) -> Backend:
    """A backend for the card: the server for served models, else llama.cpp on its local file.

    The file must already be present (see `models.pull.pull`); nothing is downloaded here.
    `kv_states_mb` bounds the embedded backend's saved KV states (models/kv_states.py).
    """
    if isinstance(card.source, ServedSource):
        from slmscope.models.openai_compat import OpenAIBackend
        from slmscope.models.retry import RetryPolicy

        key = api_key or os.environ.get("SLMSCOPE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return OpenAIBackend(
            card.source.base_url,
            card.source.model,
            api_key=key,
            stream=stream,
            timeout_s=timeout_s,
            retry=RetryPolicy(attempts=retries + 1),
        )
    from slmscope.models.llamacpp import LlamaCppBackend

    path = card.local_path
    assert path is not None
    if not path.is_file():
        raise BackendUnavailable(
            f"{path} is missing: run `slmscope models pull {card.id}`", where=card.id
        )
    return LlamaCppBackend(
        path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        name=f"llamacpp:{card.id}",
        kv_states_mb=kv_states_mb,
    )


GRAMMAR_PROBE = GenerationConfig(max_tokens=4, constraint=Constraint("probe", 'root ::= "ok"'))
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Repeat a word.",
        "parameters": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        },
    },
}
REQUIRED_TOOLS_PROBE = GenerationConfig(max_tokens=48, tools=(_PROBE_TOOL,), tool_choice="required")
REQUIRED_TOOLS_HINT = (
    "the server does not honour tool_choice 'required', which the `act` harness needs in "
    "native tool mode: use --tool-mode tags, or another harness"
)


async def check_backend(
    card: ModelCard,
    *,
    stream: bool = True,
    timeout_s: float = 120.0,
    retries: int = 2,
    grammar: bool = False,
    native_tools: bool = False,
    required_tools: bool = False,
    backend: Backend | None = None,
) -> None:
    """Before a run: a served model's server answers, serves it and replies well-formed, and
    (`grammar`) applies a grammar where none is known to, and (`required_tools`) honours
    `tool_choice: required`; a local model's chat template has a tool format (`native_tools`),
    and its file is checked as it opens. `backend`: one the
    caller opened (a test's), used as it is for the probes. Raises the BackendError that says
    what is not so."""
    abilities = card.abilities()
    probe = grammar and not abilities.grammar_checked
    if backend is None and abilities.needs_weights:
        if native_tools and card.local_path is not None and card.local_path.is_file():
            from slmscope.models.llamacpp import chat_template

            if not has_tool_format(chat_template(card.local_path)):
                raise ToolsUnsupported(NATIVE_TOOLS_HINT, where=card.id)
        return
    served = backend or open_backend(card, stream=stream, timeout_s=timeout_s, retries=retries)
    try:
        if backend is None:
            from slmscope.models.openai_compat import OpenAIBackend

            assert isinstance(served, OpenAIBackend)
            await served.preflight()
        if probe:
            await served.chat([{"role": "user", "content": "Say ok."}], GRAMMAR_PROBE)
        if required_tools:
            said: list[Message] = [{"role": "user", "content": "Say hello with the echo tool."}]
            try:
                reply = await served.chat(said, REQUIRED_TOOLS_PROBE)
            except ToolsUnsupported:
                raise
            except BackendError as err:
                raise ToolsUnsupported(f"{REQUIRED_TOOLS_HINT} ({err})", where=card.id) from err
            if not reply.tool_calls:
                raise ToolsUnsupported(REQUIRED_TOOLS_HINT, where=card.id)
    finally:
        if backend is None:
            await served.aclose()
