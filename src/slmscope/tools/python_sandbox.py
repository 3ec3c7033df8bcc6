"""The Python tool: model-written code behind a kernel boundary.

Each call starts a fresh bubblewrap sandbox (isolation.py: namespaces, a read-only view of the
interpreter and system libraries only, a size-limited tmpfs, seccomp) whose prelude sets CPU,
memory, file-size and process limits and then runs the code, which arrives on stdin from an
in-memory file. Nothing is written on the host.

bubblewrap starts held: the parent reads the host PID of the sandbox's PID 1 (the prelude
itself, `--as-pid-1`), moves both into the run's cgroup where there is one, and only then lets
it run. The parent never waits on pipes: it watches bwrap and that PID 1 through pidfds and
reads the output without blocking. However the run ends (the code's exit, the wall-clock
limit, the output cap), the parent kills the PID 1 through its pidfd, so that the kernel kills
every process of that PID namespace, a `setsid` daemon included, and then everything left in
the cgroup; it returns once PID 1 is gone. The exit status is PID 1's own: no other process of
the sandbox can change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from slmscope.tools.base import ToolError, require_str
from slmscope.tools.isolation import (
    Isolation,
    SandboxUnavailable,
    data_fd,
    isolation,
    prelude_source,
)
from slmscope.tools.sandbox_cgroup import RunGroup

GRACE_S = 0.5  # after the sandbox ends, how long its last output may take to arrive
START_S = 10.0  # how long bubblewrap may take to set the sandbox up and name its PID 1


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    output_bytes: int = 16_000
    processes: int = 32  # RLIMIT_NPROC, threads included, where the kernel counts it
    file_mb: int = 8
    tmp_mb: int = 64  # the tmpfs at /tmp, the only writable place
    code_bytes: int = 256_000
    spawn: bool = False  # may the code start processes (off: the seccomp filter refuses fork)


@dataclass(frozen=True)
class SandboxResult:
    output: str
    exit_code: int | None
    timed_out: bool
    truncated: bool


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Watch:
    """The running sandbox as seen from the event loop: bwrap's exit, the output and its cap, and
    the sandbox's PID 1, whose exit means that every process of its namespace is gone: the
    kernel reaps a PID namespace before its PID 1 exits."""

    def __init__(self, bwrap_pid: int, init_pid: int | None, out_fd: int, cap: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.cap = cap
        self.out = bytearray()
        self.owned: list[int] = []  # pidfds, closed by close()
        self.readers: list[int] = []
        self.exited = self.loop.create_future()  # bwrap
        self.capped = self.loop.create_future()
        self.eof = self.loop.create_future()
        self.gone = self.loop.create_future()  # the sandbox's PID 1
        self._watch_pid(bwrap_pid, self.exited)
        self.init_fd = self._watch_pid(init_pid, self.gone) if init_pid else None
        if init_pid is None:  # bwrap failed before starting the sandbox
            _settle(self.gone)
        self._read(out_fd, self._on_output)

    def _watch_pid(self, pid: int, future: asyncio.Future[None]) -> int | None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            _settle(future)
            return None
        self.owned.append(fd)
        self.readers.append(fd)
        self.loop.add_reader(fd, _settle, future)
        return fd

    def _read(self, fd: int, sink: Callable[[bytes], None]) -> None:
        os.set_blocking(fd, False)

        def ready() -> None:
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.loop.remove_reader(fd)
                sink(chunk)

        self.readers.append(fd)
        self.loop.add_reader(fd, ready)

    def _on_output(self, chunk: bytes) -> None:
        if not chunk:
            _settle(self.eof)
            return
        room = max(self.cap - len(self.out), 0)
        self.out.extend(chunk[:room])
        if len(chunk) > room:  # what comes after the cap is read and dropped
            _settle(self.capped)

    def kill_init(self) -> None:
        """SIGKILL the sandbox's PID 1 through its pidfd: its whole namespace dies with it."""
        if self.init_fd is not None and not self.gone.done():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)

    def close(self) -> None:
        for fd in self.readers:
            self.loop.remove_reader(fd)
        for fd in self.owned:
            os.close(fd)


def _init_pid(info_fd: int) -> int | None:
    """The host PID of the sandbox's PID 1, from bwrap's info pipe (None: bwrap failed)."""
    info = bytearray()
    deadline = time.monotonic() + START_S
    while (left := deadline - time.monotonic()) > 0 and select.select([info_fd], [], [], left)[0]:
        chunk = os.read(info_fd, 65536)
        if not chunk:
            break
        info.extend(chunk)
    try:
        return int(json.loads(info)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


async def run_python(code: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `code` in a new sandbox; stdout and stderr come back together, capped.

    Raises SandboxUnavailable where the kernel boundary cannot be set up, and ValueError for
    code over the size limit."""
    lim = limits or SandboxLimits()
    data = code.encode("utf-8", errors="replace")
    if len(data) > lim.code_bytes:
        raise ValueError(f"the code is {len(data)} bytes; the limit is {lim.code_bytes}")
    iso = isolation()
    config = json.dumps(
        {
            "cpu_s": lim.cpu_s,
            "memory_bytes": lim.memory_mb << 20,
            "file_bytes": lim.file_mb << 20,
            "processes": lim.processes,
            "spawn": lim.spawn,
        }
    )
    group = None
    if iso.cgroups is not None:  # the tmpfs's pages and inodes count with the code's memory
        try:
            group = RunGroup(iso.cgroups, (lim.memory_mb + lim.tmp_mb) << 20, lim.processes + 1)
        except OSError as err:
            raise SandboxUnavailable(f"no cgroup could be made for the run ({err})") from err
    try:
        return await _run(iso, lim, data, config, group)
    finally:
        if group is not None:
            group.kill_all()
            group.remove()


async def _run(
    iso: Isolation, lim: SandboxLimits, data: bytes, config: str, group: RunGroup | None
) -> SandboxResult:
    code_fd = data_fd(data, "code.py")
    prelude_fd = data_fd(prelude_source(), "prelude.py")
    filter_fd = os.open(iso.filters[lim.spawn], os.O_RDONLY | os.O_CLOEXEC)
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    child_fds = (filter_fd, info_w, prelude_fd, block_r)
    try:
        proc = subprocess.Popen(
            iso.argv(filter_fd, info_w, prelude_fd, lim.tmp_mb << 20, config, block_r),
            stdin=code_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=child_fds,
            env={},
            start_new_session=True,
            **iso.popen_identity(),
        )
    except BaseException:
        os.close(info_r)
        os.close(block_w)
        raise
    finally:
        for fd in (code_fd, *child_fds):
            os.close(fd)
    assert proc.stdout is not None
    watch = None
    try:
        init = _init_pid(info_r)
        if group is not None and init is not None:
            try:
                group.adopt(proc.pid, init)  # held: nothing of the code has run yet
            except ProcessLookupError:
                pass  # bubblewrap already gave up: nothing runs that a group could hold
            except OSError as err:
                raise SandboxUnavailable(f"the run's cgroup could not take it ({err})") from err
        with contextlib.suppress(BrokenPipeError):  # bubblewrap may have failed and gone
            os.write(block_w, b"go")
        watch = _Watch(proc.pid, init, proc.stdout.fileno(), lim.output_bytes)
        await asyncio.wait(
            (watch.exited, watch.capped), timeout=lim.wall_s, return_when="FIRST_COMPLETED"
        )
        timed_out = not (watch.exited.done() or watch.capped.done())
        truncated = watch.capped.done()
        watch.kill_init()  # whatever is left of the sandbox dies with its PID 1
        proc.kill()  # a no-op once it has exited
        # Each wait is bounded, and none waits on a pipe that a left-over process could hold.
        await asyncio.wait((watch.exited, watch.gone, watch.eof), timeout=GRACE_S)
        exit_code = proc.wait(timeout=GRACE_S)  # exited: this only reaps it
    finally:
        if watch is not None:
            watch.kill_init()
            watch.close()
        for fd in (info_r, block_w):
            os.close(fd)
        proc.stdout.close()
        if proc.returncode is None:  # an unexpected error above: never leave it running
            proc.kill()
            proc.wait()
    return SandboxResult(
        output=watch.out.decode("utf-8", errors="replace"),
        exit_code=None if timed_out or truncated else exit_code,
        timed_out=timed_out,
        truncated=truncated,
    )


class PythonSandbox:
    name = "python"
    description = (
        "Run a short Python program in an isolated sandbox and return what it prints. Only "
        "the standard library is installed (math, statistics; no pandas, no numpy). No "
        "network, no files outside a temporary folder, limited time and memory. Keep it to a "
        "few lines and print the values you need."
    )
    # A media type marks the input as code: a program the token budget cuts is not closed
    # and run as cut, as a query would be (paradigms/constraint.py).
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "contentMediaType": "text/x-python",
                "description": "Python source to run",
            }
        },
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    async def run(self, args: Mapping[str, Any]) -> str:
        try:
            result = await run_python(require_str(args, "code", self.name), self.limits)
        except (SandboxUnavailable, ValueError) as err:
            raise ToolError(f"python: {err}") from err
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
