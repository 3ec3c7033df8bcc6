"""A throwaway PostgreSQL cluster for the store tests: Debian's server binaries, a data folder
in /tmp, a Unix socket only (no TCP), stopped at the end of the session. CI installs the
`postgresql` package and must run these tests; elsewhere they skip, saying how to get it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def server_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user then."""
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


def cluster() -> Iterator[str]:
    """Start a cluster; yields the URL of its `postgres` database (socket in the data folder)."""
    bindir = server_bin()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL server (apt-get install postgresql)")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="slmscope-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    port = 5400 + uuid.uuid4().int % 500
    run = [
        str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "slmscope",
        "--no-sync", "-E", "UTF8", "--locale", "C",
    ]  # fmt: skip
    subprocess.run(_as_owner(run, owner), check=True, capture_output=True)
    options = f"-k {data} -p {port} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
             str(data / "server.log"), "start"]  # fmt: skip
    subprocess.run(_as_owner(start, owner), check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql://slmscope@/postgres?host={data}&port={port}"
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(_as_owner(stop, owner), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server: str) -> str:
    """A new empty database on the cluster; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.replace("/postgres?", f"/{name}?")
