"""Where slmscope keeps weights and caches: ~/.cache/slmscope, or $SLMSCOPE_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The slmscope cache root (not created here: nothing is written at import time)."""
    explicit = os.environ.get("SLMSCOPE_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "slmscope"


def models_dir() -> Path:
    return home_dir() / "models"
