"""The Python tool: model-written code in a separate, limited process.

Each call gets a fresh temporary folder (removed afterwards) and a new `python -I` process with
an empty environment, started in its own session so that the whole group can be killed. Inside
(see sandbox_child.py): no network, not root, CPU time, memory, file size and process-count
limits, and an audit hook that refuses sockets, new processes, ctypes and writes outside the
folder. Outside: a wall-clock limit and an output cap, both enforced by killing the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from slmscope.tools.base import ToolError, require_str

CHILD = Path(__file__).with_name("sandbox_child.py")
NOBODY = 65534


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    output_bytes: int = 16_000
    processes: int = 32  # RLIMIT_NPROC counts threads too
    file_mb: int = 8


@dataclass(frozen=True)
class SandboxResult:
    output: str
    exit_code: int | None
    timed_out: bool
    truncated: bool


def _child_env(work: str) -> dict[str, str]:
    """A near-empty environment: nothing of the parent's (keys, tokens) reaches the code."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": work,
        "TMPDIR": work,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_python(code: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `code` in the sandbox; stdout and stderr come back together, capped."""
    lim = limits or SandboxLimits()
    work = tempfile.mkdtemp(prefix="slmscope-sandbox-")
    try:
        (Path(work) / "code.py").write_text(code, encoding="utf-8")
        if os.getuid() == 0:  # the child drops to nobody, which must own its folder
            os.chown(work, NOBODY, NOBODY)
        config = {
            "workdir": work,
            "cpu_s": lim.cpu_s,
            "memory_bytes": lim.memory_mb << 20,
            "file_bytes": lim.file_mb << 20,
            "processes": lim.processes,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(CHILD),
            json.dumps(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=work,
            env=_child_env(work),
            start_new_session=True,
        )
        assert proc.stdout is not None
        out = bytearray()
        truncated = timed_out = False

        async def pump() -> None:
            nonlocal truncated
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                room = lim.output_bytes - len(out)
                out.extend(chunk[:room])
                if len(chunk) > room:
                    truncated = True
                    _kill_group(proc.pid)
                    return

        try:
            await asyncio.wait_for(pump(), lim.wall_s)
        except TimeoutError:
            timed_out = True
        _kill_group(proc.pid)
        exit_code = await proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SandboxResult(
        output=out.decode("utf-8", errors="replace"),
        exit_code=None if timed_out or truncated else exit_code,
        timed_out=timed_out,
        truncated=truncated,
    )


class PythonSandbox:
    name = "python"
    description = (
        "Run Python code (standard library) in an isolated sandbox and return what it prints. "
        "No network, no files outside a temporary folder, limited time and memory. "
        "Print the values you need."
    )
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source to run"}},
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    async def run(self, args: Mapping[str, Any]) -> str:
        result = await run_python(require_str(args, "code", self.name), self.limits)
        if result.timed_out:
            raise ToolError(
                f"the code ran longer than {self.limits.wall_s:g} s and was stopped;"
                f" output so far: {result.output[-500:]}"
            )
        text = result.output
        if result.truncated:
            text += f"\n[output cut at {self.limits.output_bytes} bytes]"
        if result.exit_code not in (0, None):
            raise ToolError(f"the code failed (exit {result.exit_code}):\n{text[-2000:]}")
        return text if text.strip() else "(no output: print the values you need)"
