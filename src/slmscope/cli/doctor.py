"""`slmscope doctor`: what is installed, and what works on this machine."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable

from rich.markup import escape
from rich.table import Table

from slmscope import __version__
from slmscope.cli.app import app, console
from slmscope.home import home_dir
from slmscope.metering.energy import DEFAULT_CORE_W, DEFAULT_IDLE_W, NvmlMeter, RaplMeter
from slmscope.models.catalog import CATALOG


def _check(name: str, fn: Callable[[], str]) -> tuple[str, str, str]:
    try:
        return name, "ok", fn()
    except NotImplementedError as err:
        return name, "not yet", str(err)
    except Exception as err:  # doctor reports every failure rather than stopping at one
        return name, "missing", str(err)


def _estimate() -> str:
    return (
        f"CPU time x {DEFAULT_CORE_W:g} W per busy core + {DEFAULT_IDLE_W:g} W idle "
        "(--core-watts, --idle-watts); labelled 'estimate'"
    )


def _gpu(names: list[str]) -> str:
    if not names:
        raise LookupError("no GPU (nvidia-smi absent or silent): everything runs on the CPU")
    return ", ".join(names)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if path is None or driver is None:
        raise FileNotFoundError(
            "chromium and chromedriver not both on PATH (only the report's browser test and "
            "benchmarks/report.py use them: apt-get install chromium chromium-driver)"
        )
    return f"{path}, {driver}"


def _llama_cpp() -> str:
    import llama_cpp

    return f"llama-cpp-python {llama_cpp.__version__} (embedded backend)"


def _nvml() -> str:
    meter = NvmlMeter.open(idle_samples=1)
    return f"{len(meter.handles)} GPU(s), idle {meter.describe()['idle_w']} W"


def _rapl() -> str:
    return "zones " + ", ".join(RaplMeter.open().describe()["zones"])


def _sandbox() -> str:
    from slmscope.tools.isolation import isolation

    return f"{isolation().describe()}; the python tool runs there"


def _server_extra() -> str:
    import llama_cpp.server  # noqa: F401

    return "llama-cpp-python[server] importable (OpenAI-compatible test server)"


@app.command()
def doctor() -> None:
    """What is installed, and which backends and meters work on this machine."""
    from slmscope.metering.machine import fingerprint

    machine = fingerprint()
    console.print(
        f"slmscope {__version__}, Python {sys.version.split()[0]}, "
        f"{machine['cpu']} x{machine['cores']}, {machine['ram_gib']} GiB RAM"
    )
    console.print(f"home: {home_dir()} (set SLMSCOPE_HOME to move it)")
    table = Table(title="Backends and meters")
    for col in ("part", "status", "detail"):
        table.add_column(col)
    checks = [
        _check("backend llamacpp", _llama_cpp),
        _check(
            "backend openai",
            lambda: "httpx client; point --base-url at any OpenAI-compatible server",
        ),
        _check("server extra", _server_extra),
        _check("meter nvml", _nvml),
        _check("meter rapl", _rapl),
        _check("meter estimate", _estimate),
        _check("gpu", lambda: _gpu(machine["gpus"])),  # type: ignore[arg-type]
        _check("chromium", _chromium),
        _check("python tool", _sandbox),
    ]
    for name, status, detail in checks:
        table.add_row(
            name,
            f"[green]{status}[/]" if status == "ok" else f"[yellow]{status}[/]",
            escape(detail),  # details name extras in brackets, e.g. slmscope[gpu]
        )
    console.print(table)
    installed = [c.id for c in CATALOG.values() if c.is_installed()]
    console.print(f"models installed: {', '.join(installed) or 'none'}", soft_wrap=True)
