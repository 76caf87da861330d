"""Admin preset training through the bot: /train, progress, a sample, Publish, and users get the new preset.

Uses the real ``stylizer.train.preset.train_preset`` (a few steps at 64 px on a folder of six generated photos).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from bot_helpers import UserChat, buttons_of, make_settings, picture, rows, running_bot, text_of
from fake_telegram import FakeTelegram

from stylizer.facade import Stylizer

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(importlib.util.find_spec("stylizer.train.preset") is None,
                       reason="stylizer.train.preset (train_preset) is not in this build yet"),
]


def _method() -> str:
    """CIN adds a style to the shipped base net when there is one; Johnson trains from scratch."""
    return "cin" if "cin_base" in Stylizer().manifest.models else "johnson"


async def test_admin_trains_and_publishes_a_preset(tmp_path: Path, image_folder: Path) -> None:
    method = _method()
    async with FakeTelegram() as tg:
        settings = make_settings(tg, tmp_path, admin_ids="900", train_content_dir=image_folder, train_steps=4,
                                 train_size=64)
        admin, user = UserChat(tg, 900), UserChat(tg, 901)
        async with running_bot(settings):
            await admin.text("/train")  # no picture, no name: usage, nothing runs
            await admin.wait_text("Reply to a style picture")
            tg.user_sends_photo(900, picture(80, 80, seed=11), caption=f"/train bot_test_style {method}")
            await admin.wait_text("is queued")
            sample, publish = await admin.wait_button("tp:", method="sendPhoto", timeout=200)
            assert "Sample" in text_of(sample) and any(d.startswith("td:") for d in buttons_of(sample))
            await admin.press(publish)
            await admin.wait_text("is live", method="editMessageCaption")

            await user.photo(picture(96, 64, seed=3))
            menu, _ = await user.wait_button("ps:")
            while not any(label == "Bot Test Style" for label in buttons_of(menu).values()):  # later pages
                page = next(d for d, label in buttons_of(menu).items() if label.startswith("More"))
                mark = tg.mark()
                await user.press(page)
                menu = await tg.wait_for("editMessageReplyMarkup", lambda c, since=mark: c.index >= since)
            pick = next(d for d, label in buttons_of(menu).items() if label == "Bot Test Style")
            await user.press(pick)
            result = await user.wait_result(timeout=60)
            assert "Bot Test Style" in text_of(result)

            await admin.text("/presets")
            listing, delete = await admin.wait_button("ap:x:")
            assert "bot_test_style" in text_of(listing)
            await admin.press(delete)
            await admin.wait_text("No presets installed" if len(buttons_of(listing)) == 2 else "Presets",
                                  method="editMessageText")
        manifest = (settings.presets_dir / "manifest.toml").read_text()
        assert "bot_test_style" not in manifest
        assert rows(settings, "SELECT name, method, status FROM training_runs") == [
            ("bot_test_style", method, "published")]


async def test_admin_makes_an_api_key_with_its_own_limits(tmp_path: Path) -> None:
    """``/apikey create NAME rpm=5 share=0.5``: the key is shown once and works; ``list`` shows its limits; a bad
    limit is refused with the reason; a non-admin gets nothing."""
    from bot import apikeys
    from bot.db import create_engine, session_factory

    async with FakeTelegram() as tg:
        settings = make_settings(tg, tmp_path, admin_ids="900")
        admin, user = UserChat(tg, 900), UserChat(tg, 901)
        async with running_bot(settings):
            await admin.text("/apikey create partner rpm=5 share=0.5")
            shown = await admin.wait_text("API key for partner")
            key = text_of(shown).split()[-1]
            await admin.text("/apikey list")
            await admin.wait_text("rpm=5 share=0.5")
            await admin.text("/apikey create other share=3")
            await admin.wait_text("share must be positive and at most 1")
            await user.text("/apikey create mine")
            await user.wait_text("only for the bot's admins")
        engine = create_engine(settings.database_url)
        async with session_factory(engine)() as session:
            client = await apikeys.lookup(session, key)
            assert client is not None and client.requests_per_minute == 5 and client.queue_share == 0.5
        await engine.dispose()
        assert rows(settings, "SELECT name FROM api_clients") == [("partner",)]
