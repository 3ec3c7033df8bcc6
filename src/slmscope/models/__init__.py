"""Models: the Backend protocol, the embedded llama.cpp and OpenAI-compatible backends, the
catalog of model cards and the pulling of weights."""

from __future__ import annotations

import os

from slmscope.models.base import (
    Backend,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    Completion,
    ContextOverflow,
    GenerationConfig,
    Message,
)
from slmscope.models.catalog import CATALOG, ModelCard, ServedSource, UnknownModel, resolve

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
) -> Backend:
    """A backend for the card: the server for served models, else llama.cpp on its local file.

    The file must already be present (see `models.pull.pull`); nothing is downloaded here.
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
    return LlamaCppBackend(path, n_ctx=n_ctx, n_threads=n_threads, name=f"llamacpp:{card.id}")


async def check_backend(
    card: ModelCard, *, stream: bool = True, timeout_s: float = 120.0, retries: int = 2
) -> None:
    """Before a run: a served model's server answers, serves it and replies well-formed; a
    local model's file is present. Raises the BackendError that says which is not so."""
    if not isinstance(card.source, ServedSource):
        return  # its file is checked as it is opened, before anything runs
    from slmscope.models.openai_compat import OpenAIBackend

    served = open_backend(card, stream=stream, timeout_s=timeout_s, retries=retries)
    assert isinstance(served, OpenAIBackend)
    try:
        await served.preflight()
    finally:
        await served.aclose()
