"""The Python tool attacked as an attacker would: model-written code run through the real tool,
behind the real bubblewrap and seccomp boundary. Each attack must fail, the host must be
unharmed, and nothing may be left running or written outside.

Most attacks first switch the in-process audit hook off (UNHOOK), so that they meet the kernel's
boundary, not the hook. Attacks on the PID namespace run with `spawn=True`, the only setting in
which the code may start processes at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_attacks import UNHOOK, leftovers  # the catalogue of attacks keeps them
from slmscope.tools.base import ToolError
from slmscope.tools.isolation import availability
from slmscope.tools.python_sandbox import PythonSandbox, SandboxLimits, run_python

AVAILABLE, WHY = availability()
# CI installs bubblewrap and must run these; elsewhere a missing boundary is a skip with the fix.
pytestmark = pytest.mark.skipif(not AVAILABLE and os.environ.get("CI") != "true", reason=WHY)

FAST = SandboxLimits(wall_s=5, cpu_s=5, output_bytes=4000)
SPAWN = SandboxLimits(wall_s=5, cpu_s=5, output_bytes=4000, spawn=True)


def sandbox(code: str, limits: SandboxLimits = FAST) -> tuple[str, int | None, bool, bool]:
    r = asyncio.run(run_python(code, limits))
    return r.output, r.exit_code, r.timed_out, r.truncated


@pytest.fixture
def host_unharmed() -> Iterator[None]:
    """Nothing new in the host's temp folder or /dev/shm, and no sandbox process left over."""
    places = (Path(tempfile.gettempdir()), Path("/dev/shm"))
    before = {p: set(p.iterdir()) for p in places if p.is_dir()}
    yield
    for place, names in before.items():
        assert set(place.iterdir()) - names == set(), f"written in {place}"
    assert leftovers() == []


def test_runs_code_and_returns_output() -> None:
    out, code, timed_out, _ = sandbox("import statistics\nprint(statistics.mean([1, 2, 6]))")
    assert (out, code, timed_out) == ("3\n", 0, False)
    out, _, _, _ = sandbox("open('n.txt', 'w').write('kept inside')\nprint(open('n.txt').read())")
    assert out == "kept inside\n"
    assert asyncio.run(PythonSandbox(FAST).run({"code": "print(6 * 7)"})) == "42\n"


def test_errors_quote_the_models_own_lines() -> None:
    out, code, _, _ = sandbox("x = 1\nprint('before', flush=True)\n1 / x0\n")
    assert code == 1 and out.startswith("before\n")
    assert 'File "code.py", line 3' in out and "1 / x0" in out and "NameError" in out
    assert "prelude" not in out


def test_unhook_really_switches_the_hook_off() -> None:
    """The attacks below start from here: with the hook off, only the kernel stands."""
    out, code, _, _ = sandbox("import ctypes\nctypes.CDLL(None)")
    assert code != 0 and "ctypes.dlopen is not allowed" in out
    out, code, _, _ = sandbox(UNHOOK + "import ctypes\nprint(ctypes.CDLL(None).getpid())")
    assert (out, code) == ("1\n", 0)  # PID 1 of its own PID namespace: no bwrap reaper


def test_hook_off_then_os_system_does_nothing(tmp_path: Path, host_unharmed: None) -> None:
    marker = tmp_path / "pwned"
    for limits, why in ((FAST, "Operation not permitted"), (SPAWN, "No such file")):
        out, code, _, _ = sandbox(
            UNHOOK + f"import os\nprint(os.system('touch {marker}'))\n"
            "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'id'])",
            limits,
        )
        # Without spawn the kernel refuses the fork; with it, there is no shell to run. Either
        # way system() reports "shell not run" (127) and subprocess raises.
        assert code != 0 and not marker.exists()
        assert out.startswith(f"{127 << 8}\n") and why in out, out


def test_hook_off_then_refused_syscalls_through_ctypes(host_unharmed: None) -> None:
    calls = {
        "unshare": "libc.unshare(0x10000000)",  # a new user namespace
        "mount": "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)",
        "ptrace": "libc.ptrace(16, 1, 0, 0)",  # attach to PID 1
        "socket": "libc.socket(2, 1, 0)",  # AF_INET
        "unix": "libc.socket(1, 1, 0)",  # AF_UNIX
        "keyctl": "libc.syscall(250, 0, 0, 0, 0)",
        "bpf": "libc.syscall(321, 0, 0, 0)",
        "memfd": "libc.memfd_create(b'x', 0)",
        "chroot": "libc.chroot(b'/tmp')",
    }
    lines = [UNHOOK, "import ctypes", "libc = ctypes.CDLL(None, use_errno=True)"]
    for name, call in calls.items():
        lines.append(f"r = {call}\nprint({name!r}, r, ctypes.get_errno())")
    out, code, _, _ = sandbox("\n".join(lines))
    assert code == 0, out
    for name in calls:
        assert f"{name} -1 1\n" in out, out  # -1 with EPERM, every one


def test_no_network_even_with_the_hook_off() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    out, code, _, _ = sandbox(
        UNHOOK + f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print('connected')"
    )
    waiter.join()
    server.close()
    assert accepted == [] and "connected" not in out and code != 0


def test_no_unix_socket_to_the_host(tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    abstract = f"\0slmscope-test-{os.getpid()}"
    servers = []
    for address in (str(path), abstract):
        server = socket.socket(socket.AF_UNIX)
        server.bind(address)
        server.listen()
        server.setblocking(False)
        servers.append(server)
    out, code, _, _ = sandbox(
        UNHOOK + "import socket\n"
        f"for a in ({str(path)!r}, {abstract!r}):\n"
        "    try:\n"
        "        s = socket.socket(socket.AF_UNIX)\n"
        "        s.connect(a)\n"
        "        print('connected', repr(a))\n"
        "    except OSError as e:\n"
        "        print('refused', e)\n"
    )
    assert code == 0 and "connected" not in out and out.count("refused") == 2
    for server in servers:
        with pytest.raises(BlockingIOError):
            server.accept()
        server.close()


def test_dir_fd_and_path_tricks_write_nothing_outside(tmp_path: Path, host_unharmed: None) -> None:
    target = tmp_path / "escaped"
    code_text = UNHOOK + (
        "import os\n"
        "class P(str):\n"
        "    def startswith(self, *a): return True\n"
        "attempts = {\n"
        f"    'dir_fd': lambda: os.open('escaped', os.O_CREAT | os.O_WRONLY,"
        f" dir_fd=os.open({str(tmp_path)!r}, os.O_RDONLY)),\n"
        "    'dir_fd_lib': lambda: os.open('x', os.O_CREAT | os.O_WRONLY,"
        " dir_fd=os.open('/usr/lib', os.O_RDONLY)),\n"
        "    'mkdir': lambda: os.mkdir('/usr/lib/slmscope-x'),\n"
        "    'symlink': lambda: os.symlink('/tmp', '/usr/lib/slmscope-x'),\n"
        "    'rename': lambda: os.rename('/usr/lib/os-release', '/usr/lib/x'),\n"
        "    'unlink': lambda: os.unlink('/usr/lib/os-release'),\n"
        "    'root': lambda: open('/escaped', 'w'),\n"
        f"    'str_subclass': lambda: open(P({str(target)!r}), 'w'),\n"
        "    'dev_shm': lambda: open('/dev/shm/x', 'w'),\n"
        "    'dev': lambda: open('/dev/x', 'w'),\n"
        "}\n"
        "for name, attempt in attempts.items():\n"
        "    try:\n"
        "        attempt()\n"
        "        print('WROTE', name)\n"
        "    except OSError as e:\n"
        "        print('refused', name, e.strerror)\n"
    )
    out, code, _, _ = sandbox(code_text)
    assert code == 0 and "WROTE" not in out and out.count("refused") == 10, out
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert Path("/usr/lib/os-release").exists() and not Path("/usr/lib/slmscope-x").exists()


def test_sqlite_from_any_stdlib_writes_nothing_outside(tmp_path: Path, host_unharmed: None) -> None:
    target = tmp_path / "out.db"
    out, code, _, _ = sandbox(
        UNHOOK + "import sys\n"
        "sys.path[:0] = ['/usr/lib/python3/dist-packages', '/usr/lib/python3.11']\n"
        "import sqlite3\n"
        f"db = sqlite3.connect({str(target)!r})\n"
        "db.execute('create table t(x)')\ndb.commit()\nprint('WROTE')"
    )
    assert code != 0 and "WROTE" not in out and "unable to open database" in out
    assert not target.exists()


def test_private_files_of_the_invoking_user_stay_unseen(tmp_path: Path) -> None:
    key = tmp_path / "id_key"
    key.write_text("PRIVATE-KEY-MATERIAL")
    key.chmod(0o600)
    in_home = Path.home() / f".slmscope-test-secret-{os.getpid()}"
    in_home.write_text("HOME-SECRET")
    try:
        out, code, _, _ = sandbox(
            UNHOOK + "import os\n"
            f"for p in ({str(key)!r}, {str(in_home)!r}, '/etc/passwd', '/etc/shadow'):\n"
            "    try:\n"
            "        print('READ', open(p).read())\n"
            "    except OSError as e:\n"
            "        print('refused', e.strerror)\n"
            "try:\n"
            f"    print(sorted(os.listdir({str(Path.home())!r})))\n"
            "except OSError as e:\n"
            "    print('home', e.strerror)\n"
            "print(sorted(os.listdir('/')))"
        )
    finally:
        in_home.unlink()
    assert code == 0 and "READ" not in out and "SECRET" not in out and "PRIVATE" not in out
    assert out.count("refused No such file or directory") == 4
    # The root holds the interpreter, the libraries and the sandbox's own places only.
    # (and the folder above the interpreter where that is a private one, as root's pyenv).
    assert "['dev', 'lib', 'lib64', 'proc', 'sandbox', 'tmp', 'usr']" in out or (
        "['dev', 'lib', 'lib64', 'proc', 'root', 'sandbox', 'tmp', 'usr']" in out
    )


def test_environment_of_the_parent_is_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLMSCOPE_TEST_SECRET", "hunter2")
    out, code, _, _ = sandbox("import os\nprint(dict(os.environ))")
    assert code == 0 and "hunter2" not in out and "SLMSCOPE_TEST_SECRET" not in out


def test_fork_bomb_is_refused_by_the_kernel(host_unharmed: None) -> None:
    out, code, _, _ = sandbox("import os\nwhile True:\n    os.fork()")
    assert code != 0 and "os.fork is not allowed" in out
    out, code, _, _ = sandbox(UNHOOK + "import os\nwhile True:\n    os.fork()")
    assert code != 0 and "PermissionError: [Errno 1] Operation not permitted" in out


def test_setsid_daemon_does_not_outlive_the_run(host_unharmed: None) -> None:
    daemon = UNHOOK + (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('spawned', flush=True)\n"
    )
    out, code, _, _ = sandbox(daemon, SPAWN)
    assert (out, code) == ("spawned\n", 0)
    # Still alive after the run? The kernel killed the namespace when its PID 1 died, and the
    # call returned only once that PID 1 was gone.
    assert leftovers() == []
    looping = daemon + "while True: pass"
    out, _, timed_out, _ = sandbox(looping, SandboxLimits(wall_s=1.5, spawn=True))
    assert timed_out and out == "spawned\n"


def test_leftover_holding_stdout_cannot_stretch_the_wall_limit(host_unharmed: None) -> None:
    holder = UNHOOK + (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
    )
    start = time.monotonic()
    _, _, timed_out, _ = sandbox(holder + "while True: pass", SandboxLimits(wall_s=2, spawn=True))
    assert timed_out and time.monotonic() - start < 2 + 1
    start = time.monotonic()  # the main code ends at once; the holder must not keep us waiting
    _, code, timed_out, _ = sandbox(holder + "print('done')", SandboxLimits(wall_s=5, spawn=True))
    assert code == 0 and not timed_out and time.monotonic() - start < 2


def test_two_sandboxes_can_neither_see_nor_signal_each_other(host_unharmed: None) -> None:
    probe = UNHOOK + (
        "import os, signal, time\n"
        "open('/tmp/marker-{me}', 'w').write('here')\n"
        "time.sleep(0.5)\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "seen = [p for p in pids if os.path.exists(f'/proc/{{p}}/root/tmp/marker-{other}')]\n"
        "killed = []\n"
        "for p in range(1, 400):\n"
        "    if p not in (1, os.getpid()):\n"
        "        try:\n"
        "            os.kill(p, signal.SIGKILL)\n"
        "            killed.append(p)\n"
        "        except OSError:\n"
        "            pass\n"
        "print('pids', pids, 'seen', seen, 'killed', killed)\n"
    )

    async def both() -> list[str]:
        runs = [
            run_python(probe.format(me="a", other="b"), FAST),
            run_python(probe.format(me="b", other="a"), FAST),
        ]
        return [r.output for r in await asyncio.gather(*runs)]

    for out in asyncio.run(both()):
        assert out.strip() == "pids [1] seen [] killed []", out


def test_memory_bomb_is_contained() -> None:
    out, code, _, _ = sandbox(  # first try to lift the limits the prelude set
        UNHOOK + "import resource\n"
        "for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC):\n"
        "    try:\n"
        "        resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "        print('LIFTED', r)\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
    )
    assert code == 0 and "LIFTED" not in out and out.count("refused") == 3, out
    start = time.monotonic()
    out, code, _, _ = sandbox(
        "x = bytearray(8 << 30)\nprint(len(x))", SandboxLimits(wall_s=5, memory_mb=512)
    )
    assert code != 0 and "MemoryError" in out and time.monotonic() - start < 5
    out, code, _, _ = sandbox(  # the tmpfs is RAM too: it has a size
        "open('big', 'wb').write(b'0' * (7 << 20))\nopen('big2', 'wb').write(b'0' * (7 << 20))",
        SandboxLimits(wall_s=5, tmp_mb=8),
    )
    assert code != 0 and "No space left on device" in out


def test_infinite_loop_is_stopped_in_time(host_unharmed: None) -> None:
    start = time.monotonic()
    _, code, timed_out, _ = sandbox("while True:\n    pass", SandboxLimits(wall_s=1.5))
    assert timed_out and code is None and time.monotonic() - start < 1.5 + 1
    with pytest.raises(ToolError, match=r"longer than 1\.5 s and was stopped; output so far: tick"):
        asyncio.run(
            PythonSandbox(SandboxLimits(wall_s=1.5)).run({"code": "print('tick')\nwhile 1: pass"})
        )


def test_megabytes_of_output_are_cut(host_unharmed: None) -> None:
    out, code, _, truncated = sandbox("print('x' * 50_000_000)")
    assert truncated and len(out) == FAST.output_bytes and code is None
    text = asyncio.run(PythonSandbox(FAST).run({"code": "print('y' * 10**7)"}))
    assert text.endswith(f"[output cut at {FAST.output_bytes} bytes]")


def test_oversized_code_is_refused_before_anything_runs() -> None:
    with pytest.raises(ToolError, match="the limit is 100"):
        asyncio.run(PythonSandbox(SandboxLimits(code_bytes=100)).run({"code": "#" * 200}))


def test_an_agent_runs_code_through_the_sandbox() -> None:
    """The tool as the single agent sees it: the model's action, the sandbox's real output as
    the observation, and a refused attempt told back as an observation, not a crash."""
    from conftest import ScriptedBackend
    from slmscope.models.base import GenerationConfig
    from slmscope.paradigms.single_agent import SingleAgent
    from slmscope.tasks.builtin import SUITE

    task = SUITE["builtin:table_qa"]()[0]
    act = '<action>{{"tool": "python", "input": {{"code": {code}}}}}</action>'
    backend = ScriptedBackend(
        [
            act.format(code='"print(sum(range(10)))"'),
            act.format(code='"import socket; socket.socket()"'),
            f"<final_answer>{task.gold}</final_answer>",
        ]
    )
    trace = asyncio.run(SingleAgent().solve(task.problem, backend, GenerationConfig()))
    assert trace.outcome == "ok"
    assert [s.tool for s in trace.steps[:2]] == ["python", "python"]
    assert trace.steps[0].observation == "45\n"
    assert "socket.__new__ is not allowed" in (trace.steps[1].observation or "")
