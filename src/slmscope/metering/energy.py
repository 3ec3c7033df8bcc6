"""Energy meters: one interface, every reading labelled with the method that made it.

- `nvml`: NVIDIA GPU energy counters (nvidia-ml-py) read around each model call, minus the idle
  power measured when the meter opens, per GPU.
- `rapl`: the CPU package and DRAM counters under /sys/class/powercap, where readable, with the
  counters' wrap-around handled.
- `estimate`: where neither is there: CPU seconds of the inference work x a per-core active
  power, plus the stated idle power attributed to the run x wall time. Marked `estimate`
  wherever it appears, never passed off as a reading.
- `unavailable`: nothing measured (e.g. a model served from another machine).

A meter is used as `mark = meter.start()` ... `reading = meter.stop(mark)`; readings of the
calls of one sample add up with `EnergyReading.total`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from slmscope.errors import ConfigError, UserError

EnergyMethod = Literal["nvml", "rapl", "estimate", "unavailable"]
METER_CHOICES = ("auto", "nvml", "rapl", "estimate", "off")
POWERCAP = Path("/sys/class/powercap")
# The estimate's defaults, stated in the README: a busy server core draws about 7 W (e.g. a
# 280 W, 40-core part under load), and 10 W of a machine's idle draw is attributed to the run.
DEFAULT_CORE_W = 7.0
DEFAULT_IDLE_W = 10.0


@dataclass(frozen=True)
class EnergyReading:
    """Joules over one span, with the method and, for nvml and rapl, the parts (per GPU or
    counter zone) they add up from."""

    joules: float | None
    method: EnergyMethod
    parts: dict[str, float] = field(default_factory=dict)
    shared: int = 1  # the most calls in flight at once during the span (its energy is split)

    @staticmethod
    def total(readings: Iterable[EnergyReading]) -> EnergyReading:
        """The sum of several spans of one meter; unavailable if any span is."""
        readings = list(readings)
        if not readings or any(r.joules is None for r in readings):
            return UNAVAILABLE
        methods = {r.method for r in readings}
        if len(methods) > 1:  # one backend has one meter: a mix means readings were crossed
            raise ValueError(f"cannot add energy measured by different methods: {methods}")
        method = methods.pop()
        parts: dict[str, float] = {}
        for r in readings:
            for name, joules in r.parts.items():
                parts[name] = parts.get(name, 0.0) + joules
        shared = max(r.shared for r in readings)
        return EnergyReading(sum(r.joules or 0.0 for r in readings), method, parts, shared)

    def divided(self, n: int) -> EnergyReading:
        """An equal share of this span among the `n` calls that were in flight during it."""
        joules = None if self.joules is None else self.joules / n
        parts = {name: j / n for name, j in self.parts.items()}
        return EnergyReading(joules, self.method, parts, n)


UNAVAILABLE = EnergyReading(joules=None, method="unavailable")


class EnergyMeter(Protocol):
    method: EnergyMethod

    def start(self) -> Any: ...

    def stop(self, mark: Any) -> EnergyReading: ...

    def describe(self) -> dict[str, Any]:
        """What the run record says about this meter (method, zones, constants)."""
        ...


class NoMeter:
    method: EnergyMethod = "unavailable"

    def __init__(self, why: str) -> None:
        self.why = why

    def start(self) -> None:
        return None

    def stop(self, mark: Any) -> EnergyReading:
        return UNAVAILABLE

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "why": self.why}


# --- estimate -------------------------------------------------------------------------------


class EstimateMeter:
    """CPU seconds of this process x `core_w` + wall seconds x `idle_w`. The work must run in
    this process (the embedded backend: llama.cpp's threads count in the process CPU time)."""

    method: EnergyMethod = "estimate"

    def __init__(self, core_w: float = DEFAULT_CORE_W, idle_w: float = DEFAULT_IDLE_W) -> None:
        if core_w < 0 or idle_w < 0:
            raise ConfigError("estimate powers must be >= 0 W")
        self.core_w, self.idle_w = core_w, idle_w

    def start(self) -> tuple[float, float]:
        return time.process_time(), time.perf_counter()

    def stop(self, mark: tuple[float, float]) -> EnergyReading:
        cpu_s = time.process_time() - mark[0]
        wall_s = time.perf_counter() - mark[1]
        return self.reading(cpu_s, wall_s)

    def reading(self, cpu_s: float, wall_s: float) -> EnergyReading:
        active, idle = cpu_s * self.core_w, wall_s * self.idle_w
        return EnergyReading(active + idle, "estimate", {"active": active, "idle": idle})

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "core_w": self.core_w, "idle_w": self.idle_w}


# --- RAPL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaplZone:
    name: str  # e.g. "package-0", "package-0/dram"
    energy: Path
    max_uj: int


def rapl_zones(root: Path = POWERCAP) -> tuple[list[RaplZone], list[str]]:
    """Package zones and their DRAM subzones whose counters can be read, and the problems met
    (an unreadable counter is named, not skipped silently). Core/uncore subzones are left out:
    the package counter already holds them."""
    zones: list[RaplZone] = []
    problems: list[str] = []
    for top in sorted(root.glob("intel-rapl:*")):
        if top.name.count(":") != 1:
            continue
        for zone in [top, *sorted(top.glob(f"{top.name}:*"))]:
            try:
                name = (zone / "name").read_text().strip()
            except OSError as err:
                problems.append(f"{zone}: {err.strerror or err}")
                continue
            if zone is not top and name != "dram":
                continue
            label = name if zone is top else f"{(top / 'name').read_text().strip()}/{name}"
            try:
                int((zone / "energy_uj").read_text())
                max_uj = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError) as err:
                why = err.strerror if isinstance(err, OSError) and err.strerror else err
                problems.append(f"{zone / 'energy_uj'}: {why}")
                continue
            zones.append(RaplZone(label, zone / "energy_uj", max_uj))
    return zones, problems


class RaplMeter:
    """CPU package (+ DRAM) energy from the powercap counters, in microjoules, wrap-aware."""

    method: EnergyMethod = "rapl"

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        if not zones:
            raise ValueError("no readable RAPL zone")
        self.zones = tuple(zones)

    @classmethod
    def open(cls, root: Path = POWERCAP) -> RaplMeter:
        zones, problems = rapl_zones(root)
        if not zones:
            detail = "; ".join(problems[:3]) or f"no intel-rapl zones under {root}"
            raise MeterUnavailable(f"rapl: {detail}")
        return cls(zones)

    def start(self) -> list[int]:
        return [int(z.energy.read_text()) for z in self.zones]

    def stop(self, mark: list[int]) -> EnergyReading:
        parts = {}
        for zone, before in zip(self.zones, mark, strict=True):
            after = int(zone.energy.read_text())
            delta = after - before
            if delta < 0:  # the counter wrapped (once; calls are far shorter than a wrap)
                delta += zone.max_uj
            parts[zone.name] = delta / 1e6
        return EnergyReading(sum(parts.values()), "rapl", parts)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "zones": [z.name for z in self.zones]}


# --- NVML -----------------------------------------------------------------------------------


class NvmlMeter:
    """GPU energy from NVML's total-energy counters (millijoules, Volta and later), per GPU,
    minus the idle power sampled when the meter opens x the call's wall time."""

    method: EnergyMethod = "nvml"

    def __init__(self, nvml: Any, handles: Sequence[Any], idle_w: Sequence[float]) -> None:
        self.nvml, self.handles, self.idle_w = nvml, tuple(handles), tuple(idle_w)

    @classmethod
    def open(cls, idle_samples: int = 10, interval_s: float = 0.1) -> NvmlMeter:
        try:
            import pynvml  # nvidia-ml-py, in the `gpu` extra
        except ImportError as err:
            raise MeterUnavailable("nvml: nvidia-ml-py is not installed (slmscope[gpu])") from err
        try:
            pynvml.nvmlInit()
            handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            if not handles:
                raise MeterUnavailable("nvml: no GPU")
            for h in handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)  # older GPUs lack the counter
            watts: list[list[float]] = [[] for _ in handles]
            for _ in range(idle_samples):
                for i, h in enumerate(handles):
                    watts[i].append(pynvml.nvmlDeviceGetPowerUsage(h) / 1000)
                time.sleep(interval_s)
        except pynvml.NVMLError as err:
            raise MeterUnavailable(f"nvml: {err}") from err
        return cls(pynvml, handles, [sorted(w)[len(w) // 2] for w in watts])

    def start(self) -> tuple[float, list[int]]:
        counters = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        return time.perf_counter(), counters

    def stop(self, mark: tuple[float, list[int]]) -> EnergyReading:
        wall_s = time.perf_counter() - mark[0]
        parts = {}
        for i, (h, before) in enumerate(zip(self.handles, mark[1], strict=True)):
            used = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) - before) / 1000
            parts[f"gpu{i}"] = max(0.0, used - self.idle_w[i] * wall_s)
        return EnergyReading(sum(parts.values()), "nvml", parts)

    def memory_used_mb(self) -> list[float]:
        return [self.nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20 for h in self.handles]

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "gpus": len(self.handles),
            "idle_w": [round(w, 1) for w in self.idle_w],
        }


# --- choosing ---------------------------------------------------------------------------------


class MeterUnavailable(UserError):
    """The asked-for meter cannot run here; the message says why."""


def open_meter(
    choice: str = "auto",
    *,
    in_process: bool,
    same_machine: bool,
    core_w: float = DEFAULT_CORE_W,
    idle_w: float = DEFAULT_IDLE_W,
    powercap: Path = POWERCAP,
) -> EnergyMeter:
    """The meter for a backend. `in_process`: the model runs in this process (the estimate can
    count its CPU time); `same_machine`: it runs on this machine (counters can see it). `auto`
    takes RAPL, else the estimate, for the embedded backend (llama.cpp on the CPU), and NVML,
    else RAPL, for a server on this machine; an explicitly chosen meter that cannot run raises
    MeterUnavailable."""
    if choice not in METER_CHOICES:
        raise ConfigError(f"unknown energy meter {choice!r}; available: {', '.join(METER_CHOICES)}")
    if choice == "off":
        return NoMeter("energy metering switched off")
    if not same_machine:
        if choice != "auto":
            raise MeterUnavailable(f"{choice}: the model runs on another machine")
        return NoMeter("the model runs on another machine")
    if choice != "auto":
        order = [choice]
    else:
        order = ["rapl", "estimate"] if in_process else ["nvml", "rapl", "estimate"]
    why: list[str] = []
    for method in order:
        try:
            if method == "nvml":
                return NvmlMeter.open()
            if method == "rapl":
                return RaplMeter.open(powercap)
        except MeterUnavailable as err:
            why.append(str(err))
            continue
        if not in_process:
            why.append("estimate: the model runs in another process (its CPU time is not ours)")
            continue
        return EstimateMeter(core_w, idle_w)
    if choice != "auto":
        raise MeterUnavailable("; ".join(why))
    return NoMeter("; ".join(why))
