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
) -> Backend:
    """A backend for the card: the server for served models, else llama.cpp on its local file.

    The file must already be present (see `models.pull.pull`); nothing is downloaded here.
    """
    if isinstance(card.source, ServedSource):
        from slmscope.models.openai_compat import OpenAIBackend

        key = api_key or os.environ.get("SLMSCOPE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return OpenAIBackend(card.source.base_url, card.source.model, api_key=key, stream=stream)
    from slmscope.models.llamacpp import LlamaCppBackend

    path = card.local_path
    assert path is not None
    if not path.is_file():
        raise BackendUnavailable(
            f"{path} is missing: run `slmscope models pull {card.id}`", where=card.id
        )
    return LlamaCppBackend(path, n_ctx=n_ctx, n_threads=n_threads, name=f"llamacpp:{card.id}")
