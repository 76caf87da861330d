"""``python -m bot`` without a token: the HTTP service alone; with nothing to run, exit code 2 and one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from postgres import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_missing_token_serves_http_alone_and_without_http_exits_2(tmp_path: Path) -> None:
    """No BOT_TOKEN: the HTTP service alone, printing its URL; no token and no HTTP_LISTEN: nothing to run (2)."""
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    env.update(PYTHONPATH=str(ROOT), HTTP_LISTEN=f"127.0.0.1:{free_port()}", LOG_LEVEL="WARNING",
               PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"Stylebot HTTP service: http://{env['HTTP_LISTEN']}/"), line
        with urllib.request.urlopen(f"http://{env['HTTP_LISTEN']}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack, to see what held the stop
            raise AssertionError(proc.communicate(timeout=30)[1][-6000:]) from None
        assert code == 0, proc.communicate()[1][-3000:]
    env["HTTP_LISTEN"] = ""
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "BOT_TOKEN" in done.stderr and "HTTP_LISTEN" in done.stderr


def test_bad_setting_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_TOKEN": "1:x", "WORKERS": "many"}
    proc = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "WORKERS" in proc.stderr


def test_migrate_role_needs_no_token_and_builds_the_schema(tmp_path: Path, postgres_url: str) -> None:
    """``python -m bot migrate`` on SQLite (the default file) and on PostgreSQL; a second run is a no-op."""
    base = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    base.update(PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path / "var"))
    for url in ("", postgres_url):
        env = {**base, "DATABASE_URL": url} if url else base
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "bot.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0009",)]
