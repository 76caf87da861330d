"""``python -m bot web``: the webhook front end. Secret token checked (403), 200 only after the effects
are committed, a re-delivered update processed once, jobs persisted for workers and not stylized here."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from bot_helpers import buttons_of, ensure_presets, make_settings, picture, rows, text_of
from postgres import free_port

from bot.db import NotMigrated, create_engine, migrate
from bot.web import SECRET_HEADER, serve

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


async def test_webhook_front_end(tg, tmp_path: Path, postgres_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg/hook"
    settings = make_settings(tg, tmp_path, webhook_url=url, webhook_listen=f"127.0.0.1:{port}",
                             webhook_secret="s3cret_token", database_url=postgres_url)
    ensure_presets(settings)
    engine = create_engine(postgres_url)
    with pytest.raises(NotMigrated):  # replicas never migrate: `python -m bot migrate` does
        await serve(settings, asyncio.Event())
    await migrate(engine)
    await engine.dispose()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop))
    try:
        await tg.wait_until(lambda: tg.webhook is not None, timeout=60)
        assert tg.webhook["url"] == url and tg.webhook["secret_token"] == "s3cret_token"
        headers = {SECRET_HEADER: "s3cret_token"}
        async with aiohttp.ClientSession() as http:
            photo = tg.user_sends_photo(401, picture(96, 64, seed=1))
            for bad in ({}, {SECRET_HEADER: "wrong"}):
                async with http.post(url, json=photo, headers=bad) as response:
                    assert response.status == 403
            assert rows(settings, "SELECT count(*) FROM events")[0][0] == 0  # nothing ran
            for _ in range(2):  # Telegram re-delivers: the second time is answered without running again
                async with http.post(url, json=photo, headers=headers) as response:
                    assert response.status == 200
            menus = [c for c in tg.calls if c.method == "sendMessage" and any(
                d.startswith("ps:") for d in buttons_of(c))]
            assert len(menus) == 1  # the 200 came after the menu was sent
            preset = next(d for d in buttons_of(menus[0]) if d.startswith("ps:"))
            press = tg.user_presses(401, menus[0].result["message_id"], preset)
            async with http.post(url, json=press, headers=headers) as response:
                assert response.status == 200
            status = await tg.wait_for("sendMessage", lambda c: "In the queue" in text_of(c))
            assert any(d.startswith("x:") for d in buttons_of(status))
            async with http.post(url, data=b"not json", headers=headers) as response:
                assert response.status == 400
        await asyncio.sleep(1.0)
        assert not [c for c in tg.calls if c.method == "sendPhoto"]  # no stylization in a front end
    finally:
        stop.set()
        await server
    assert rows(settings, "SELECT status FROM jobs") == [("queued",)]  # waiting for a worker
    job_id = rows(settings, "SELECT id FROM jobs")[0][0]
    # its queue entry, committed with the row
    assert rows(settings, "SELECT entrypoint, payload, status::text FROM pgqueuer") == [
        ("stylize", str(job_id).encode(), "queued")]
    assert rows(settings, "SELECT count(*) FROM processed_updates")[0][0] == 2
    assert rows(settings, "SELECT count(*) FROM events")[0][0] == 2  # one per update, re-delivery included


def test_web_role_needs_its_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_") and k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT), BOT_TOKEN="1:x", DATA_DIR=str(tmp_path))
    for role in ("web", "worker"):  # SQLite: the queue needs PostgreSQL
        proc = subprocess.run([sys.executable, "-m", "bot", role], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2 and "postgresql+asyncpg" in proc.stderr, proc.stderr
    env["DATABASE_URL"] = "postgresql+asyncpg://bot@127.0.0.1:9/bot"
    proc = subprocess.run([sys.executable, "-m", "bot", "web"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "WEBHOOK_URL" in proc.stderr
