"""A throwaway PostgreSQL server for tests: a cluster in a temp dir, on a free port of 127.0.0.1.

Binaries come from Debian's ``postgresql`` package (``scripts/setup`` installs it when missing).
``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is missing: run scripts/setup (it installs Debian's postgresql)")
    return found[-1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for servers the tests and benchmarks start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a base URL ``postgresql+asyncpg://postgres@127.0.0.1:PORT``; the cluster is gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="stylebot-pg-"))
    data, port = root / "data", free_port()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(_bin("pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "start", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, RuntimeError):
            run(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    """A fresh database on the server; returns its URL."""
    port = base_url.rsplit(":", 1)[1]
    subprocess.run([_bin("psql"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True)
    return f"{base_url}/{name}"
