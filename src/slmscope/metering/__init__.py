"""Per-call usage and timings, memory, energy and the machine's fingerprint."""

from slmscope.metering.usage import Timings, Usage

__all__ = ["Timings", "Usage"]
