"""Runs inside the sandbox process (`python -I sandbox_child.py CONFIG`), before the model's code.

Order matters: leave the network (a new network namespace), drop root (to nobody), set the
resource limits, install the audit hook, and only then read and run the code. The hook cannot
be removed once installed; it refuses sockets, processes, signals to others, ctypes, and any
write outside the sandbox folder.
"""

import ctypes
import importlib
import json
import os
import resource
import sys
import traceback

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
NOBODY = 65534
BLOCKED = {
    "socket.__new__",
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.sendto",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.dlopen",
    "ctypes.dlsym",
    "ctypes.cdata",
    "ctypes.call_function",
    "ctypes.addressof",
    "sys.remote_exec",
    "webbrowser.open",
}
PATH_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "os.chdir",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.copytree",
    "shutil.move",
    "shutil.copymode",
    "shutil.copystat",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Imported before privileges drop: after it, an interpreter installed under a private home
# (pyenv under /root, say) is unreadable, so only these standard modules are available there.
PRELOAD = (
    "math",
    "cmath",
    "decimal",
    "fractions",
    "statistics",
    "random",
    "datetime",
    "calendar",
    "json",
    "re",
    "string",
    "textwrap",
    "itertools",
    "functools",
    "operator",
    "collections",
    "heapq",
    "bisect",
    "array",
    "csv",
    "io",
    "dataclasses",
    "typing",
    "enum",
    "copy",
    "pprint",
    "time",
    "threading",
    "numbers",
    "locale",
    "unicodedata",
    "difflib",
    "hashlib",
    "base64",
)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    work = os.path.realpath(cfg["workdir"])
    for name in PRELOAD:
        importlib.import_module(name)
    libc = ctypes.CDLL(None, use_errno=True)
    if os.getuid() == 0:
        netns = libc.unshare(CLONE_NEWNET) == 0
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    else:
        netns = libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    limits = (
        (resource.RLIMIT_CPU, cfg["cpu_s"]),
        (resource.RLIMIT_AS, cfg["memory_bytes"]),
        (resource.RLIMIT_FSIZE, cfg["file_bytes"]),
        (resource.RLIMIT_NPROC, cfg["processes"]),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in limits:
        resource.setrlimit(which, (value, value))

    def inside(path: object) -> bool:
        try:
            text = os.fsdecode(path)  # type: ignore[arg-type]
        except TypeError:
            return False
        real = os.path.realpath(os.path.join(work, text))
        return real == work or real.startswith(work + os.sep)

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if writing and not inside(path):
                raise PermissionError(f"sandbox: no writing outside the sandbox folder ({path})")
        elif event in PATH_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, str | bytes | os.PathLike) and not inside(arg):
                    raise PermissionError(f"sandbox: {event} outside the sandbox folder ({arg!r})")

    os.chdir(work)
    with open("code.py", encoding="utf-8") as f:
        source = f.read()
    if not netns:
        print(
            "[sandbox: no network namespace here; sockets are refused by the audit hook]",
            file=sys.stderr,
        )
    sys.addaudithook(hook)
    sys.argv = ["code.py"]
    try:
        exec(compile(source, "code.py", "exec"), {"__name__": "__main__"})
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as err:
        # Only the model's own frames: the sandbox's are noise in an observation.
        report = traceback.TracebackException.from_exception(err)
        report.stack = traceback.StackSummary.from_list(
            [f for f in report.stack if f.filename == "code.py"]
        )
        print("".join(report.format()), end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
