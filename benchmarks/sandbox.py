"""The start-up cost of one `python` tool call, measured side by side in one run.

Three things start the same `print(1)`, taking turns call by call (these machines are noisy):
- the bare interpreter with no isolation (`python -I -S -c`, a subprocess), the floor;
- the sandbox as the agents use it (bubblewrap namespaces, seccomp, limits, processes refused);
- the sandbox with processes allowed (the other seccomp filter).
- with `--before DIR`, also the sandbox of another checkout (an earlier commit, made with
  `git worktree add DIR REV`), run by a helper process that imports that checkout's code and
  takes its turn in the same rounds.
It prints the median of each and the sandbox's ratio to the bare interpreter.

    python benchmarks/sandbox.py [--calls 20] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from slmscope.tools.isolation import isolation
from slmscope.tools.python_sandbox import SandboxLimits, run_python


async def bare() -> None:
    proc = await asyncio.create_subprocess_exec(
        isolation().python, "-I", "-S", "-c", "print(1)", stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert out == b"1\n"


async def sandboxed(limits: SandboxLimits) -> None:
    result = await run_python("print(1)", limits)
    assert result.output == "1\n" and result.exit_code == 0, result


# The helper for --before: one `print(1)` through that checkout's sandbox per line read.
HELPER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1] + '/src')
from slmscope.tools.python_sandbox import run_python
for _ in sys.stdin:
    result = asyncio.run(run_python('print(1)'))
    assert result.output == '1\\n', result
    print('ok', flush=True)
"""


class Before:
    """Another checkout's sandbox, in a helper process (the module names are the same)."""

    def __init__(self, checkout: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HELPER, checkout],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def call(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"


async def measure(calls: int, before: str | None) -> dict[str, list[float]]:
    ways: dict[str, Callable[[], Awaitable[None]]] = {
        "bare interpreter": bare,
        "sandbox": lambda: sandboxed(SandboxLimits()),
        "sandbox, processes allowed": lambda: sandboxed(SandboxLimits(spawn=True)),
    }
    if before is not None:
        ways[f"sandbox of {before}"] = Before(before).call
    for way in ways.values():  # warm-up: the filters compile, the files are cached
        await way()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(calls):
        for name, way in ways.items():
            start = time.perf_counter()
            await way()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--before", help="a checkout of an earlier commit, measured beside")
    args = parser.parse_args()
    print(f"boundary: {isolation().describe()}; Python {sys.version.split()[0]}")
    times = asyncio.run(measure(args.calls, args.before))
    floor = statistics.median(times["bare interpreter"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:30s} median {median * 1000:6.1f} ms  (min {min(values) * 1000:.1f}, "
            f"max {max(values) * 1000:.1f}; {median / floor:.2f}x the bare interpreter)"
        )


if __name__ == "__main__":
    main()
