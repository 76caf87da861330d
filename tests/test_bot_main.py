"""``python -m bot`` refuses to start without a token: exit code 2 and one line on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_token_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "BOT_TOKEN" in proc.stderr


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
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0006",)]
