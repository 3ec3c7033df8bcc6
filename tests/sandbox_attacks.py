"""Second-round attacks on the python tool's sandbox, as model-written code through the real tool.

Each attack is a function that takes `run(code, limits) -> SandboxResult`, attacks, checks the
host before and after, and returns what it found wrong (an empty list: contained). They import
only the standard library and slmscope.tools, so that the same catalogue runs in pytest (as
whoever runs the tests: root in CI) and as a script under an unprivileged uid:

    python tests/sandbox_attacks.py      # prints {"attack": [problems...], ...} as JSON

Most attacks switch the prelude's audit hook off first (UNHOOK), so that they meet the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from slmscope.tools.isolation import isolation
from slmscope.tools.python_sandbox import SandboxLimits, SandboxResult, run_python

Run = Callable[[str, SandboxLimits], SandboxResult]
FAST = SandboxLimits(wall_s=5, cpu_s=5, output_bytes=8000)
SPAWN = SandboxLimits(wall_s=5, cpu_s=5, output_bytes=8000, spawn=True)
UNHOOK = (
    "import gc\n"
    "for _f in gc.get_objects():\n"
    "    if type(_f).__name__ == 'function' and _f.__code__.co_name == 'hook':\n"
    "        for _c in _f.__closure__ or ():\n"
    "            _c.cell_contents = frozenset()\n"
)
TRY = (  # try(name, f): prints DONE name or refused name
    "def attempt(name, f):\n"
    "    try:\n"
    "        f()\n"
    "        print('DONE', name, flush=True)\n"
    "    except BaseException as e:\n"
    "        print('refused', name, type(e).__name__, flush=True)\n"
)
GAP = "gap: "  # a problem the boundary names itself (isolation().gaps), where it cannot help it
SYSCTLS = ("kernel/core_pattern", "kernel/core_uses_pid", "vm/drop_caches")


def leftovers() -> list[str]:
    """Host processes still running a sandbox's prelude (forks keep its command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if b"/sandbox/prelude.py" in (proc / "cmdline").read_bytes():
                    found.append(proc.name)
    return found


def _sysctls() -> dict[str, str]:
    """The readable ones (vm/drop_caches is write-only)."""
    found = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            found[name] = Path("/proc/sys", name).read_text()
    return found


def _done(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("DONE")]


def sysctls_then_abort(run: Run) -> list[str]:
    marker = Path(tempfile.gettempdir()) / f"slmscope-core-{os.getpid()}"
    before = _sysctls()
    code = (
        UNHOOK
        + TRY
        + (
            f"attempt('core_pattern', lambda: open('/proc/sys/kernel/core_pattern', 'w')"
            f".write('|/usr/bin/touch {marker}'))\n"
            "uses_pid = '/proc/sys/kernel/core_uses_pid'\n"
            "attempt('core_uses_pid', lambda: open(uses_pid, 'w').write('1'))\n"
            "attempt('drop_caches', lambda: open('/proc/sys/vm/drop_caches', 'w').write('3'))\n"
            "import resource, os\n"
            "attempt('core_limit', lambda: resource.setrlimit(resource.RLIMIT_CORE, (-1, -1)))\n"
            "os.abort()\n"
        )
    )
    result = run(code, FAST)
    time.sleep(0.5)  # a core pipe would run now
    after = _sysctls()
    problems = _done(result.output)
    if after != before:
        problems.append(f"host sysctls changed: {before} -> {after}")
        for name, value in before.items():  # put the host back (possible as root only)
            with contextlib.suppress(OSError):
                Path("/proc/sys", name).write_text(value)
    if marker.exists():
        problems.append(f"the core pipe ran on the host: {marker}")
        marker.unlink()
    return problems


def dev_nodes_chmod_utime(run: Run) -> list[str]:
    nodes = sorted(p for p in os.listdir("/dev") if stat.S_ISCHR(os.lstat(f"/dev/{p}").st_mode))
    before = {n: os.stat(f"/dev/{n}") for n in nodes}
    code = (
        UNHOOK
        + TRY
        + (
            "import os, stat\n"
            "for n in sorted(os.listdir('/dev')):\n"
            "    p = '/dev/' + n\n"
            "    if not stat.S_ISCHR(os.lstat(p).st_mode):\n"
            "        continue  # /dev/pts is the sandbox's own devpts; the rest are links\n"
            "    attempt('chmod ' + p, lambda: os.chmod(p, 0o777))\n"
            "    attempt('utime ' + p, lambda: os.utime(p, (0, 0)))\n"
            "    attempt('chown ' + p, lambda: os.chown(p, 65534, 65534))\n"
            "    attempt('mknod ' + p, lambda: os.mknod('/dev/x' + n, 0o20666, os.makedev(1, 3)))\n"
        )
    )
    result = run(code, FAST)
    problems = _done(result.output)
    if result.output.count("refused") < 4:
        problems.append(f"the attack did not run: {result.output[-300:]}")
    for n, st in before.items():
        now = os.stat(f"/dev/{n}")
        if (now.st_mode, now.st_mtime, now.st_uid) != (st.st_mode, st.st_mtime, st.st_uid):
            problems.append(f"host /dev/{n} changed")
            with contextlib.suppress(OSError):  # put the host back (possible as root only)
                os.chown(f"/dev/{n}", st.st_uid, st.st_gid)
                os.chmod(f"/dev/{n}", st.st_mode & 0o7777)
                os.utime(f"/dev/{n}", ns=(st.st_atime_ns, st.st_mtime_ns))
    return problems


def pid1_memory(run: Run) -> list[str]:
    """The code is the namespace's PID 1: there is no other process to take over, and a child
    that writes into PID 1's memory is the code itself. The status reported is the code's."""
    code = UNHOOK + (
        "import os, sys\n"
        "print('pid', os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "if os.fork() == 0:\n"
        "    try:\n"
        "        fd = os.open('/proc/1/mem', os.O_RDWR)\n"
        "        print('child opened /proc/1/mem', flush=True)\n"
        "    except OSError as e:\n"
        "        print('child refused', e.strerror, flush=True)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "sys.exit(3)\n"
    )
    result = run(code, SPAWN)
    problems = []
    if not result.output.startswith("pid 1 [1]\n"):
        problems.append(f"another process is PID 1 or was there first: {result.output[:200]}")
    if result.exit_code != 3:
        problems.append(f"reported exit {result.exit_code}, the code exited 3")
    return problems


def pid1_outlives_the_code(run: Run) -> list[str]:
    problems = []
    for tail, wall in (("print('main done', flush=True)\n", 3.0), ("while True: pass\n", 2.0)):
        code = (
            UNHOOK
            + (
                "import os, signal, time, atexit\n"
                "if os.fork() == 0:\n"
                "    os.setsid()\n"
                "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "    hold = bytearray(64 << 20)\n"
                "    while True: time.sleep(0.1)\n"
                "atexit.register(lambda: time.sleep(30))  # PID 1 lingers after the code\n"
            )
            + tail
        )
        start = time.monotonic()
        result = run(code, SandboxLimits(wall_s=wall, cpu_s=5, spawn=True))
        took = time.monotonic() - start
        if took > wall + 1:
            problems.append(f"the call took {took:.1f} s against a wall limit of {wall} s")
        if left := leftovers():
            problems.append(f"left running after the call: {left}")
        if not result.timed_out:
            problems.append("a lingering PID 1 was not stopped at the wall limit")
    return problems


def fill_every_writable_place(run: Run) -> list[str]:
    hidden = list(isolation().hidden)
    places = ["/tmp", "/", "/dev", "/sandbox", "/proc/sys", "/usr/lib", *hidden]
    code = UNHOOK + (
        "import os\n"
        f"for place in {places!r}:\n"
        "    n = 0\n"
        "    try:\n"
        "        with open(os.path.join(place, 'fill'), 'wb') as f:\n"
        "            while n < 64:\n"
        "                f.write(b'0' * (1 << 20)); f.flush(); n += 1\n"
        "    except OSError as e:\n"
        "        pass\n"
        "    print(place, n, flush=True)\n"
    )
    result = run(code, SandboxLimits(wall_s=10, cpu_s=10, tmp_mb=16, file_mb=64))
    problems = []
    written = dict(line.rsplit(" ", 1) for line in result.output.splitlines() if " " in line)
    if len(written) != len(places):
        problems.append(f"the attack did not finish: {result.output[-300:]}")
    for place, megabytes in written.items():
        cap = 16 if place == "/tmp" else 0
        if int(megabytes) > cap:
            problems.append(f"{megabytes} MiB written in {place} (cap {cap})")
    return problems


def files_until_refused(run: Run) -> list[str]:
    """Empty files cost kernel memory, not tmpfs bytes: the run's cgroup counts them."""
    if isolation().cgroups is None:  # a gap, not a containment: the caller must say so
        return [f"{GAP}no cgroup here, so nothing caps the tmpfs's files"]
    code = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    while n < 2_000_000:\n"
        "        os.close(os.open(f'/tmp/{n}', os.O_CREAT | os.O_WRONLY)); n += 1\n"
        "        if n % 20000 == 0: print(n, flush=True)\n"
        "except (OSError, MemoryError) as e:\n"
        "    print('refused', n, type(e).__name__, flush=True)\n"
    )
    limits = SandboxLimits(wall_s=40, cpu_s=40, memory_mb=96, tmp_mb=8, output_bytes=100_000)
    result = run(code, limits)
    lines = result.output.split()
    count = int(lines[-1]) if lines and lines[-1].isdigit() else int(lines[-2]) if lines else 0
    problems = []
    if result.timed_out:
        problems.append("still creating files at the wall limit")
    if count >= 2_000_000 or not result.output:
        problems.append(f"{count} files created, never refused")
    return problems


def ipc_and_secret_memory(run: Run) -> list[str]:
    code = UNHOOK + (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for name, nr, args in (('msgget', 68, (0, 0o1600)), ('semget', 64, (0, 1, 0o1600)),"
        " ('memfd_secret', 447, (0,)), ('shmget', 29, (0, 4096, 0o1600)),"
        " ('inotify_init1', 294, (0,))):\n"
        "    r = libc.syscall(nr, *args)\n"
        "    print(name, r, ctypes.get_errno(), flush=True)\n"
    )
    result = run(code, FAST)
    lines = result.output.splitlines()
    problems = [line for line in lines if not line.endswith(" -1 1")]
    if len(lines) != 5:
        problems.append(f"the attack did not run: {result.output[-300:]}")
    return problems


def threads_past_the_limit(run: Run) -> list[str]:
    code = (
        "import threading, time\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(300):\n"
        "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError as e:\n"
        "    pass\n"
        "print(started)\n"
    )
    result = run(code, SandboxLimits(wall_s=8, cpu_s=5, processes=8))
    text = result.output.strip()
    if not text.isdigit():
        return [f"the attack did not run: {result.output[-300:]}"]
    return [f"{text} threads started against a limit of 8"] if int(text) > 8 else []


def host_wide_proc(run: Run) -> list[str]:
    names = ["cmdline", "meminfo", "slabinfo", "kpageflags", "timer_list", "sched_debug"]
    names += ["sys/kernel/random/boot_id", "sys/kernel/core_pattern", "sysrq-trigger", "keys"]
    secrets = []
    for name in ("cmdline", "sys/kernel/random/boot_id"):
        with contextlib.suppress(OSError):
            secrets.append(Path("/proc", name).read_text().strip())
    code = UNHOOK + (
        f"for n in {names!r}:\n"
        "    try:\n"
        "        data = open('/proc/' + n, 'rb').read(4096)\n"
        "        print('READ' if data else 'empty', n, data[:200])\n"
        "    except OSError as e:\n"
        "        print('refused', n, e.strerror)\n"
    )
    result = run(code, FAST)
    problems = [line for line in result.output.splitlines() if line.startswith("READ")]
    problems += [f"host value seen: {s[:40]}" for s in secrets if s and s in result.output]
    if len(result.output.splitlines()) != len(names):
        problems.append(f"the attack did not run: {result.output[-300:]}")
    return problems


def host_uid_of_the_sandbox(run: Run) -> list[str]:
    """Seen from the host, the sandbox's processes are never uid 0."""
    seen: list[str] = []

    def look() -> None:
        deadline = time.monotonic() + 4
        while not seen and time.monotonic() < deadline:
            for pid in leftovers():
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    seen.append(next(ln for ln in status.splitlines() if ln.startswith("Uid:")))
            time.sleep(0.02)

    watcher = threading.Thread(target=look)
    watcher.start()
    run("import time\ntime.sleep(1.5)", FAST)
    watcher.join()
    if not seen:
        return ["the sandbox's process was never seen on the host"]
    uids = set(seen[0].split()[1:])
    return [f"the sandbox runs as host {seen[0]}"] if "0" in uids else []


ATTACKS: dict[str, Callable[[Run], list[str]]] = {
    f.__name__: f
    for f in (
        host_uid_of_the_sandbox,
        sysctls_then_abort,
        dev_nodes_chmod_utime,
        pid1_memory,
        pid1_outlives_the_code,
        fill_every_writable_place,
        files_until_refused,
        ipc_and_secret_memory,
        threads_past_the_limit,
        host_wide_proc,
    )
}


def run_sync(code: str, limits: SandboxLimits) -> SandboxResult:
    return asyncio.run(run_python(code, limits))


if __name__ == "__main__":
    found = {name: attack(run_sync) for name, attack in ATTACKS.items()}
    found["__identity__"] = [f"uid {os.getuid()}", isolation().describe()]
    json.dump(found, sys.stdout)
