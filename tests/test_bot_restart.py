"""Restart safety with a real process: ``python -m bot`` is killed (SIGKILL) mid-job; the next start delivers it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bot_helpers import UserChat, make_settings, picture, rows
from fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
#: ``python -m bot``'s own main(), after registering a stand-in method only if no real own-style method exists.
LAUNCH = "import bot_helpers, sys; bot_helpers.ensure_methods(); from bot.__main__ import main; sys.exit(main())"


def _start(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH], cwd=cwd, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.timeout(180)
async def test_killed_mid_job_then_delivered_after_restart(tmp_path: Path) -> None:
    async with FakeTelegram() as tg:
        settings = make_settings(tg, tmp_path, gatys_steps=12, workers=1, progress_interval=0.05)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               "PYTHONUNBUFFERED": "1"}
        env.update({name.upper(): str(value) for name, value in settings.model_dump().items()
                    if value is not None and name != "admin_ids"})
        log = tmp_path / "bot.log"
        chat = UserChat(tg, 301)
        proc = _start(env, tmp_path, log)
        try:
            await chat.photo(picture(96, 64, seed=1))
            await chat.wait_button("hq:", timeout=90)
            await chat.press("hq:1")
            await chat.wait_text("High quality")
            await chat.photo(picture(80, 80, seed=2))
            await chat.wait_text("%", method="editMessageText")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 30)
        assert rows(settings, "SELECT status FROM jobs") == [("running",)]
        proc = _start(env, tmp_path, log)
        try:
            result = await chat.wait_result(timeout=120)
        finally:
            proc.send_signal(signal.SIGINT)  # a clean stop this time (the fake server keeps answering meanwhile)
            try:
                assert await asyncio.to_thread(proc.wait, 30) == 0
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
        assert result is not None
        assert rows(settings, "SELECT status, attempts FROM jobs") == [("done", 2)]
