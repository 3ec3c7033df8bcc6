"""Process memory: peak resident set size."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
