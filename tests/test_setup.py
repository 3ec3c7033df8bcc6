"""The set-up step of `make test` (scripts/setup-step, scripts/prepare-tests): what it builds
is built there, outside any test, and a failure is one line naming the step and its log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def step(home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / "setup-step"), "demo", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "SLMSCOPE_HOME": str(home)},
        timeout=60,
        check=False,
    )


def test_a_step_says_how_long_it_took_and_keeps_its_log(tmp_path: Path) -> None:
    done = step(tmp_path, "sh", "-c", "echo compiling; echo warning >&2")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines()[0] == "set-up: demo ..."
    assert done.stdout.splitlines()[1].startswith("set-up: demo done in ")
    assert (tmp_path / "logs" / "setup-demo.log").read_text() == "compiling\nwarning\n"


def test_a_failed_step_is_one_line_naming_it_and_its_log(tmp_path: Path) -> None:
    done = step(tmp_path, "sh", "-c", "echo 'cc1plus: out of memory' >&2; exit 4")
    log = tmp_path / "logs" / "setup-demo.log"
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 1
    assert lines[0].startswith("set-up step 'demo' failed after ")
    assert lines[0].endswith(f"its log: {log}")
    assert "out of memory" in log.read_text() and "out of memory" not in done.stdout


def test_locating_llama_server_builds_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPTS / "build-llama-server"), "--locate"],
        capture_output=True,
        text=True,
        env={**os.environ, "SLMSCOPE_HOME": str(tmp_path), "PYTHON": sys.executable},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "llama-server is not built" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing built
