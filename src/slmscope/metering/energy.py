"""Energy readings. Until real meters exist, every reading says plainly that it is unavailable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EnergyMethod = Literal["nvml", "rapl", "estimate", "unavailable"]


@dataclass(frozen=True)
class EnergyReading:
    joules: float | None
    method: EnergyMethod


UNAVAILABLE = EnergyReading(joules=None, method="unavailable")
