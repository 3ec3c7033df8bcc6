"""A control group per sandboxed run, where this machine lets slmscope make one.

A cgroup is what counts the memory that no rlimit sees: the tmpfs's pages, the kernel's inodes
and dentries for the files the code creates, pipe buffers. It also caps the threads and
processes of the run whatever their uid, and it names every process of the run, so that the
call can kill them all at its end. The group is made under the caller's own cgroup (so the
caller's limits still hold above it), in cgroup v2 where its memory and pids controllers are
enabled for children, else in the v1 memory and pids hierarchies. bubblewrap is started held
(`--block-fd`): its two processes are moved into the group before the sandbox runs anything.

Where no group can be made (an ordinary user without a delegated cgroup, a read-only
/sys/fs/cgroup), `cgroup_support()` says so, and doctor and the run record show it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
SLACK_BYTES = 64 << 20  # bubblewrap, the interpreter's own pages, page tables
_serial = itertools.count()


@dataclass(frozen=True)
class CgroupParents:
    """Where the runs' groups are made: one folder (v2) or one per v1 controller."""

    version: int
    memory: Path
    pids: Path

    def describe(self) -> str:
        if self.version == 2:
            return f"cgroup v2 under {self.memory}"
        return f"cgroup v1 under {self.memory} and {self.pids}"


def _own_path(controller: str) -> str | None:
    """This process's cgroup path in a v1 controller's hierarchy ("" for v2's), or None."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(",") or (controller == "" and names == ""):
                return path.lstrip("/")
    return None


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _v2() -> CgroupParents | None:
    for mount in (ROOT, ROOT / "unified"):
        own = _own_path("")
        if own is None or not (mount / "cgroup.controllers").is_file():
            continue
        parent = mount / own
        with contextlib.suppress(OSError):
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if {"memory", "pids"} <= set(enabled) and _writable(parent):
                return CgroupParents(2, parent, parent)
    return None


def _v1() -> CgroupParents | None:
    folders = []
    for controller in ("memory", "pids"):
        own = _own_path(controller)
        folder = ROOT / controller / own if own is not None else None
        if folder is None or not _writable(folder) or not (folder / "cgroup.procs").is_file():
            return None
        folders.append(folder)
    return CgroupParents(1, folders[0], folders[1])


def cgroup_parents() -> CgroupParents | str:
    """Where runs' groups can be made, or the reason there is none."""
    found = _v2() or _v1()
    if found is not None:
        return found
    return (
        "no cgroup this user can make groups in (cgroup v2 with memory and pids delegated, or "
        "writable v1 memory and pids hierarchies): the tmpfs's files and the kernel memory they "
        "take are not capped, and threads are capped by RLIMIT_NPROC alone"
    )


class RunGroup:
    """The group of one run: made with its limits, joined by bubblewrap, killed and removed."""

    def __init__(self, parents: CgroupParents, memory_bytes: int, tasks: int) -> None:
        name = f"slmscope-sandbox-{os.getpid()}-{next(_serial)}"
        self.folders = list(dict.fromkeys((parents.memory / name, parents.pids / name)))
        try:
            for folder in self.folders:
                folder.mkdir(exist_ok=True)  # one left by a killed process of the same pid
            limit = memory_bytes + SLACK_BYTES
            if parents.version == 2:
                (self.folders[0] / "memory.max").write_text(str(limit))
                with contextlib.suppress(OSError):  # no swap to escape into
                    (self.folders[0] / "memory.swap.max").write_text("0")
                (self.folders[0] / "pids.max").write_text(str(tasks))
            else:
                (self.folders[0] / "memory.limit_in_bytes").write_text(str(limit))
                with contextlib.suppress(OSError):
                    (self.folders[0] / "memory.memsw.limit_in_bytes").write_text(str(limit))
                (self.folders[-1] / "pids.max").write_text(str(tasks))
        except BaseException:
            self.remove()
            raise

    def adopt(self, *pids: int) -> None:
        """Move these (held, not yet running) processes into the group."""
        for folder in self.folders:
            for pid in pids:
                (folder / "cgroup.procs").write_text(str(pid))

    def kill_all(self) -> None:
        """SIGKILL every process in the group, then wait (briefly) until it is empty."""
        deadline = time.monotonic() + 2.0
        while True:
            pids = self._pids()
            if not pids or time.monotonic() > deadline:
                return
            kill_file = self.folders[0] / "cgroup.kill"
            if kill_file.is_file():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def _pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(50):  # an exiting process can hold the folder for a moment
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
