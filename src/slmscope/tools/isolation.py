"""The kernel boundary of the Python sandbox: bubblewrap namespaces and a seccomp filter.

Each run gets new user, PID, network, IPC, UTS, cgroup and mount namespaces. Its root is an
empty tmpfs holding read-only binds of the interpreter and the system libraries (nothing else
of the host's files: no home, no /etc, no /run and its sockets), a private /proc whose sysctls
and host-wide files are covered, a minimal read-only /dev (so no /dev/shm), and one
size-limited tmpfs at /tmp as its working folder. The code runs as the namespace's PID 1 (no
bubblewrap reaper that it could take over). The seccomp filter (seccomp_policy.py) is compiled
once per policy into the slmscope cache.

The sandbox never runs as host root: where slmscope itself runs as root, bubblewrap is started
as an unprivileged uid and gid (65534, or $SLMSCOPE_SANDBOX_UID), so that nothing the code can
reach is owned by it, and with an interpreter that uid can read (the running one where its
folders allow, else the system's /usr/bin/python3). Where a cgroup can be made, each run has
one (sandbox_cgroup.py) that caps its memory, kernel memory included, and its tasks.

Where bubblewrap, the seccomp bindings, user namespaces or an unprivileged identity are
missing, the sandbox is unavailable, never weaker: `isolation()` says why, and the `python`
tool is left out. What stays weaker on this machine (no cgroup) is named in `gaps`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmscope.home import home_dir
from slmscope.tools.sandbox_cgroup import CgroupParents, cgroup_parents

POLICY = Path(__file__).with_name("seccomp_policy.py")
PRELUDE = Path(__file__).with_name("sandbox_child.py")
PRELUDE_IN_SANDBOX = "/sandbox/prelude.py"
# Pythons tried, in order, for compiling the filter: the one with libseccomp's bindings is
# usually the system's, not the virtual environment's.
FILTER_PYTHONS = (sys.executable, "/usr/bin/python3")
SYSTEM_PYTHON = "/usr/bin/python3"
INSTALL_HINT = "apt-get install bubblewrap python3-seccomp"
SANDBOX_UID = 65534  # nobody, inside the sandbox's own user namespace
HOST_ID_ENV = "SLMSCOPE_SANDBOX_UID"  # the host uid/gid bubblewrap runs as when called by root
HIDDEN_TMPFS_BYTES = 4096  # the read-only tmpfs that covers a folder
# Host-wide files of /proc (the private /proc still shows them): covered by /dev/null.
PROC_COVERED = (
    "cmdline", "kallsyms", "kcore", "keys", "key-users", "slabinfo", "timer_list",
    "sched_debug", "kpageflags", "kpagecount", "kpagecgroup", "meminfo", "vmallocinfo",
    "iomem", "ioports", "interrupts", "modules", "zoneinfo", "buddyinfo", "pagetypeinfo",
    "config.gz", "partitions", "diskstats", "swaps", "locks", "cgroups", "softirqs", "vmstat",
    "sysrq-trigger", "latency_stats", "mtrr", "misc", "devices",
)  # fmt: skip
PROC_DIRS_COVERED = ("sys", "irq", "bus", "fs", "tty", "driver", "acpi", "scsi", "sysvipc")
# What the chosen interpreter says of itself: its binary and standard library, real paths.
ASK_PYTHON = (
    "import json, os, sys, sysconfig; r = os.path.realpath; print(json.dumps({"
    "'python': r(sys.executable), 'stdlib': r(sysconfig.get_paths()['stdlib']),"
    "'prefix': r(sys.base_prefix), 'version': sys.version.split()[0]}))"
)


class SandboxUnavailable(RuntimeError):
    """The kernel boundary cannot be set up here; the message says why and how to fix it."""


@dataclass(frozen=True)
class Isolation:
    """What one sandboxed run is started with."""

    bwrap: str
    bwrap_version: str
    python: str
    python_version: str
    binds: tuple[str, ...]  # host paths bound read-only at the same place
    hidden: tuple[str, ...]  # folders inside those binds covered by an empty read-only tmpfs
    symlinks: tuple[tuple[str, str], ...]  # (target, link) as on the host: /lib -> usr/lib
    filters: dict[bool, Path]  # compiled seccomp filter, keyed by "processes allowed"
    host_id: int | None  # the uid and gid bubblewrap runs as; None: the caller's own (not root)
    proc_covered: tuple[str, ...]  # host-wide /proc files present here, covered by /dev/null
    cgroups: CgroupParents | None
    gaps: tuple[str, ...]  # what is weaker on this machine, in words

    def describe(self) -> str:
        who = "the caller's uid" if self.host_id is None else f"host uid {self.host_id}"
        groups = self.cgroups.describe() if self.cgroups else "no cgroup"
        said = (
            f"bubblewrap {self.bwrap_version} namespaces + seccomp, as {who}, {groups} "
            f"(Python {self.python_version} at {self.python})"
        )
        return said + "".join(f"; weaker here: {gap}" for gap in self.gaps)

    def popen_identity(self) -> dict[str, Any]:
        """Popen's arguments that start bubblewrap as the unprivileged identity (if root)."""
        if self.host_id is None:
            return {}
        return {"user": self.host_id, "group": self.host_id, "extra_groups": []}

    def argv(
        self,
        seccomp_fd: int,
        info_fd: int,
        prelude_fd: int,
        tmp_bytes: int,
        config: str,
        block_fd: int | None = None,
    ) -> list[str]:
        """The bwrap command line that runs the prelude (read from `prelude_fd`) as the PID 1
        of the sandbox; the prelude reads the code on stdin. bwrap writes the host PID of that
        PID 1 to `info_fd`, and with `block_fd` waits for a byte there before it runs it."""
        args = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--clearenv",
        ]
        for path in self.binds:
            args += ["--ro-bind", path, path]
        for path in self.hidden:
            args += ["--size", str(HIDDEN_TMPFS_BYTES), "--tmpfs", path, "--remount-ro", path]
        for target, link in self.symlinks:
            args += ["--symlink", target, link]
        args += ["--ro-bind-data", str(prelude_fd), PRELUDE_IN_SANDBOX]
        args += ["--proc", "/proc"]
        for name in self.proc_covered:
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]
        for name in PROC_DIRS_COVERED:
            if os.path.isdir(f"/proc/{name}"):
                args += ["--size", str(HIDDEN_TMPFS_BYTES), "--tmpfs", f"/proc/{name}"]
                args += ["--remount-ro", f"/proc/{name}"]
        args += ["--dev", "/dev", "--remount-ro", "/dev"]
        args += ["--size", str(tmp_bytes), "--tmpfs", "/tmp"]
        for key, value in (("HOME", "/tmp"), ("TMPDIR", "/tmp"), ("LANG", "C.UTF-8")):
            args += ["--setenv", key, value]
        args += ["--chdir", "/tmp", "--remount-ro", "/", "--seccomp", str(seccomp_fd)]
        args += ["--info-fd", str(info_fd)]
        if block_fd is not None:
            args += ["--block-fd", str(block_fd)]
        return [*args, "--", self.python, "-I", "-S", "-B", "-u", PRELUDE_IN_SANDBOX, config]


def _system_binds() -> tuple[list[str], list[tuple[str, str]]]:
    """/usr/lib and friends; /lib and /lib64 become links where the host merged them into /usr."""
    binds = [p for p in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(p)]
    links = []
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            links.append((os.readlink(top), top))
        elif os.path.isdir(top):
            binds.append(top)
    return binds, links


def _host_id() -> int | None:
    """The unprivileged uid/gid for bubblewrap when the caller is root, else None."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get(HOST_ID_ENV, str(SANDBOX_UID))
    if not raw.isdigit() or int(raw) == 0:
        raise SandboxUnavailable(
            f"{HOST_ID_ENV}={raw!r}: the sandbox's host uid must be a positive number"
        )
    return int(raw)


def reachable(path: str, host_id: int) -> bool:
    """Can `host_id` (as uid and gid, no other groups) read `path` and every folder above?"""

    def allowed(st: os.stat_result, bits: tuple[int, int, int]) -> bool:
        if st.st_uid == host_id:
            return bool(st.st_mode & bits[0])
        if st.st_gid == host_id:
            return bool(st.st_mode & bits[1])
        return bool(st.st_mode & bits[2])

    search = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    read = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
    parts = Path(path).parts
    try:
        for depth in range(1, len(parts)):
            if not allowed(os.stat(Path(*parts[:depth])), search):
                return False
        return allowed(os.stat(path), read)
    except OSError:
        return False


def _ask(python: str) -> dict[str, str] | None:
    """What an interpreter says of its own paths, or None if it cannot be run."""
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", ASK_PYTHON],
            capture_output=True, text=True, timeout=30, check=False, env={},
        )  # fmt: skip
        found: dict[str, str] = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return found if done.returncode == 0 else None


def _python_binds(host_id: int | None) -> tuple[dict[str, str], list[str], list[str]]:
    """The interpreter and its standard library, for one the sandbox's uid can read; its
    site-packages stay hidden (-I -S)."""
    current = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    refused = []
    for candidate in dict.fromkeys((current, SYSTEM_PYTHON)):
        found = _ask(candidate) if os.path.exists(candidate) else None
        if found is None:
            continue
        libdir = os.path.join(found["prefix"], "lib")
        # A private installation (pyenv, uv) brings libpython beside its standard library.
        private = not libdir.startswith("/usr/lib") and os.path.isdir(libdir)
        binds = [found["python"], libdir if private else found["stdlib"]]
        if host_id is not None and not all(reachable(p, host_id) for p in binds):
            refused.append(found["python"])
            continue
        site = os.path.join(found["stdlib"], "site-packages")
        return found, binds, [site] if os.path.isdir(site) else []
    raise SandboxUnavailable(
        f"no Python that the sandbox's host uid {host_id} may read"
        f" ({', '.join(refused) or 'none found'}: a folder above it is closed to others); "
        f"install the system's python3, or set {HOST_ID_ENV} to a uid that can read one"
    )


def _compile_filter(allow_processes: bool) -> Path:
    """The BPF program for one policy, compiled on first use and kept in the slmscope cache."""
    source = POLICY.read_bytes()
    tag = hashlib.sha256(source + bytes([allow_processes])).hexdigest()[:16]
    path = home_dir() / "sandbox" / f"seccomp-{tag}.bpf"
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    problems = []
    for python in dict.fromkeys(FILTER_PYTHONS):
        if not os.path.exists(python):
            continue
        cmd = [python, "-I", str(POLICY), str(partial)]
        done = subprocess.run(
            [*cmd, "--processes"] if allow_processes else cmd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0 and partial.is_file() and partial.stat().st_size > 0:
            partial.replace(path)
            return path
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        problems.append(f"{python}: {last}")
    partial.unlink(missing_ok=True)
    raise SandboxUnavailable(
        "no Python here has libseccomp's bindings to compile the sandbox's seccomp filter "
        f"({'; '.join(problems) or 'none found'}); install them: {INSTALL_HINT}"
    )


@functools.cache
def prelude_source() -> bytes:
    """The prelude every run starts with, read once per process."""
    return PRELUDE.read_bytes()


def data_fd(data: bytes, name: str) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _probe(candidate: Isolation) -> None:
    """Start one empty sandbox, so that a kernel without user namespaces is found up front."""
    fds = (
        os.open(candidate.filters[False], os.O_RDONLY | os.O_CLOEXEC),
        os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC),
        data_fd(prelude_source(), "prelude.py"),
    )
    try:
        done = subprocess.run(
            candidate.argv(*fds, 1 << 20, "{}"),
            input=b"",
            capture_output=True,
            pass_fds=fds,
            env={},
            timeout=30,
            check=False,
            **candidate.popen_identity(),
        )
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode != 0:
        said = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        raise SandboxUnavailable(
            f"bubblewrap could not start a sandbox here ({said.strip()[-300:]}); user "
            "namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1, or on "
            "Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)"
        )


def isolation() -> Isolation:
    """The boundary, checked once per process; SandboxUnavailable says why there is none."""
    found = _checked()
    if isinstance(found, SandboxUnavailable):
        raise found
    return found


@functools.cache
def _checked() -> Isolation | SandboxUnavailable:
    try:
        return _set_up()
    except SandboxUnavailable as err:
        return err


def _set_up() -> Isolation:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    version = subprocess.run(
        [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()[-1:]
    host_id = _host_id()
    found, python_binds, hidden = _python_binds(host_id)
    system, links = _system_binds()
    groups = cgroup_parents()
    candidate = Isolation(
        bwrap=bwrap,
        bwrap_version=version[0] if version else "unknown",
        python=found["python"],
        python_version=found["version"],
        binds=tuple(dict.fromkeys(system + python_binds)),
        hidden=tuple(hidden),
        symlinks=tuple(links),
        filters={allow: _compile_filter(allow) for allow in (False, True)},
        host_id=host_id,
        proc_covered=tuple(n for n in PROC_COVERED if os.path.exists(f"/proc/{n}")),
        cgroups=groups if isinstance(groups, CgroupParents) else None,
        gaps=() if isinstance(groups, CgroupParents) else (groups,),
    )
    _probe(candidate)
    return candidate


def availability() -> tuple[bool, str]:
    """(available, detail) for doctor, the run record and the agents' tool lists."""
    try:
        return True, isolation().describe()
    except SandboxUnavailable as err:
        return False, str(err)
