"""The seccomp filter of the Python sandbox, compiled to a BPF program for `bwrap --seccomp`.

This file runs as a script under a Python that has libseccomp's bindings (Debian's
`python3-seccomp`, usually only the system `/usr/bin/python3`), so it imports nothing of
slmscope: `python3 -I seccomp_policy.py OUT.bpf [--processes]`. The policy allows by default
and refuses what interpreted Python code never needs; syscalls of any other architecture (the
32-bit and x32 entry points) kill the process, which is libseccomp's default for a foreign
architecture.
"""

from __future__ import annotations

import errno
import sys

# Refused with EPERM: leaving or changing the namespaces, debugging other processes, kernel
# objects that outlive the sandbox or reach the host (keys, BPF, perf, io_uring, which bypasses
# seccomp for the operations it queues), memory that RLIMIT_AS does not count, and the system
# administration calls.
DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "quotactl",
    "personality",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "memfd_create",  # memory outside RLIMIT_AS, as /dev/shm would be
    "shmget",
    "shmat",
    "msgget",  # System V queues and semaphores: kernel memory that no limit of the run counts
    "msgsnd",
    "msgrcv",
    "semget",
    "semop",
    "semtimedop",
    "inotify_init",  # watching the read-only binds would show the host's own activity there
    "inotify_init1",
    "inotify_add_watch",
    "fanotify_mark",
    "socket",  # no socket of any family; an unnamed socketpair (asyncio's self-pipe) stays
)
# Refused by number where an older libseccomp does not know the name (x86-64 numbers).
DENIED_BY_NUMBER = {"memfd_secret": 447}  # unevictable memory
# Processes, when the limits allow none: fork and vfork, and clone without CLONE_THREAD
# (threads stay allowed).
PROCESS_CALLS = ("fork", "vfork")
CLONE_THREAD = 0x00010000
# A clone that asks for any new namespace is refused, processes allowed or not.
CLONE_NAMESPACES = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def compile_filter(out_path: str, allow_processes: bool) -> None:
    """Write the BPF program to `out_path`."""
    import seccomp  # libseccomp's own bindings; only the script's Python has them

    refuse = seccomp.ERRNO(errno.EPERM)
    policy = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        policy.add_rule(refuse, name)
    for name, number in DENIED_BY_NUMBER.items():
        try:
            policy.add_rule(refuse, name)
        except (RuntimeError, ValueError):
            policy.add_rule(refuse, number)
    # clone3 passes its flags in memory that a filter cannot read: ENOSYS makes the C library
    # fall back to clone, whose flags the rules below check.
    policy.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NAMESPACES:
        policy.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    if not allow_processes:
        for name in PROCESS_CALLS:
            policy.add_rule(refuse, name)
        policy.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    with open(out_path, "wb") as out:
        policy.export_bpf(out)


if __name__ == "__main__":
    compile_filter(sys.argv[1], "--processes" in sys.argv[2:])
