"""The second round of attacks (tests/sandbox_attacks.py) against the real sandbox: each one
as whoever runs the tests (root in CI) and, where that is root, the whole catalogue again as
an unprivileged uid, from a copy of the code that uid can read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_attacks import ATTACKS, GAP, run_sync
from slmscope.home import home_dir
from slmscope.tools.isolation import SYSTEM_PYTHON, availability, isolation
from slmscope.tools.python_sandbox import SandboxLimits

AVAILABLE, WHY = availability()
pytestmark = pytest.mark.skipif(not AVAILABLE and os.environ.get("CI") != "true", reason=WHY)
ORDINARY_UID = 65533  # an unprivileged caller, neither root nor the sandbox's own uid
SRC = Path(__file__).resolve().parents[1] / "src" / "slmscope"


def contained(name: str, problems: list[str], describe: str) -> bool:
    """No problem, or only the gap that the boundary itself names as weaker here."""
    gaps = [p for p in problems if p.startswith(GAP)]
    return len(gaps) == len(problems) and (not gaps or "weaker here" in describe)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(name: str) -> None:
    problems = ATTACKS[name](run_sync)
    assert contained(name, problems, isolation().describe()), problems


def test_a_root_caller_never_gives_the_sandbox_root() -> None:
    iso = isolation()
    if os.geteuid() == 0:
        assert iso.host_id is not None and iso.host_id != 0
        assert "as host uid" in iso.describe()
    else:
        assert iso.host_id is None and "as the caller's uid" in iso.describe()


def test_what_is_weaker_here_is_named() -> None:
    iso = isolation()
    if iso.cgroups is None:
        assert "weaker here" in iso.describe() and "not capped" in iso.describe()
    else:
        assert iso.gaps == () and "weaker" not in iso.describe()


@pytest.fixture
def readable_copy() -> Iterator[Path]:
    """The package and the catalogue, in a folder every uid can read (the checkout may not be)."""
    folder = Path(tempfile.mkdtemp(prefix="slmscope-attacks-"))
    try:
        shutil.copytree(SRC, folder / "slmscope", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(Path(__file__).with_name("sandbox_attacks.py"), folder)
        home = folder / "home"
        home.mkdir()
        isolation()  # the set-up step compiled the filters; that uid reuses them, builds nothing
        shutil.copytree(home_dir() / "sandbox", home / "sandbox")
        for path in (home, *home.rglob("*")):
            os.chown(path, ORDINARY_UID, ORDINARY_UID)
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_attacks_are_contained_for_an_unprivileged_caller(readable_copy: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"the tests already run unprivileged (uid {os.geteuid()}): see above")
    python = next((p for p in (sys.executable, SYSTEM_PYTHON) if _readable_by_others(p)), None)
    if python is None:
        pytest.fail(f"no Python 3.11+ that uid {ORDINARY_UID} may run ({SYSTEM_PYTHON} missing)")
    done = subprocess.run(
        [python, "-I", "-c", "import sys; sys.path.insert(0, '.'); import runpy; "
         "runpy.run_path('sandbox_attacks.py', run_name='__main__')"],
        cwd=readable_copy,
        env={"SLMSCOPE_HOME": str(readable_copy / "home"), "PATH": "/usr/bin:/bin"},
        user=ORDINARY_UID, group=ORDINARY_UID, extra_groups=[],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    identity = found.pop("__identity__")
    assert identity[0] == f"uid {ORDINARY_UID}" and "as the caller's uid" in identity[1]
    assert set(found) == set(ATTACKS)
    for name, problems in found.items():
        assert contained(name, problems, identity[1]), (name, problems)


def _readable_by_others(python: str) -> bool:
    from slmscope.tools.isolation import reachable

    real = os.path.realpath(python)
    if not os.path.exists(real) or not reachable(real, ORDINARY_UID):
        return False
    version = subprocess.run(
        [real, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return version.stdout.strip() == "True"


def test_the_tmpfs_over_site_packages_takes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the interpreter's prefix has a site-packages folder (pyenv, uv, python.org builds),
    an empty tmpfs covers it: sized and read-only. Tried on a folder of this machine's stdlib,
    since whether the chosen interpreter has one depends on the machine."""
    import dataclasses

    import slmscope.tools.python_sandbox as python_sandbox

    iso = isolation()
    stdlib = subprocess.run(
        [iso.python, "-I", "-S", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    covered = os.path.join(stdlib, "email")
    monkeypatch.setattr(
        python_sandbox, "isolation", lambda: dataclasses.replace(iso, hidden=(covered,))
    )
    result = run_sync(
        "import os\n"
        f"print(os.listdir({covered!r}))\n"
        "n = 0\n"
        "try:\n"
        f"    with open({covered!r} + '/fill', 'wb') as f:\n"
        "        while n < 64:\n"
        "            f.write(b'0' * (1 << 20)); f.flush(); n += 1\n"
        "except OSError as e:\n"
        "    print('refused', e.strerror)\n"
        "print(n)\n",
        SandboxLimits(wall_s=5, cpu_s=5),
    )
    assert result.output == "[]\nrefused Read-only file system\n0\n", result.output
