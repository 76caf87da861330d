"""End-to-end: the real bot Application against the fake Bot API server, a real SQLite file, real methods.

Each test starts the bot in-process (``running_bot``) with tiny outputs (64 px) and few Gatys steps,
talks to it as one or more users through the fake server, and checks both what the users see and
what the database recorded.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from pathlib import Path

import pytest
from bot_helpers import (
    UserChat,
    buttons_of,
    call_method,
    ensure_methods,
    ensure_presets,
    make_settings,
    picture,
    rows,
    running_bot,
    text_of,
    wait_rows,
)
from PIL import Image

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _methods() -> None:
    ensure_methods()


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def _menu(chat: UserChat, seed: int = 1) -> tuple[object, dict[str, str]]:
    await chat.photo(picture(96, 64, seed=seed))
    call, _ = await chat.wait_button("ow:")
    return call, buttons_of(call)


async def test_photo_preset_result_flow(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 101)
        await chat.text("/start")
        await chat.wait_text("Send me a photo")
        _, menu = await _menu(chat)
        preset = next(d for d in menu if d.startswith("ps:"))
        await chat.press(preset)
        status = await chat.wait_text("In the queue")
        assert any(d.startswith("x:") for d in buttons_of(status))  # cancel button on the status message
        result = await chat.wait_result()
        photo = _decode(tg.sent_photos(101)[-1])
        assert max(photo.size) == settings.output_size
        keys = buttons_of(result)
        assert {"rs:1:25", "rs:1:50", "rs:1:75", "rs:1:100", "rc:1", "ra:1", "rf:1:0"} <= set(keys)
        await chat.wait_text("Done", method="editMessageText")

        await chat.press("rs:1:50")
        half = await chat.wait_result(lambda c: "50%" in text_of(c))
        assert "• 50%" in buttons_of(half).values()
        await chat.press("rc:1")
        await chat.wait_result(lambda c: "🎨 Keep colours: on" in buttons_of(c).values())
        await chat.press("rf:1:0")  # the original is 96 px wide: re-rendered larger, sent as a PNG file
        doc = await chat.wait("sendDocument")
        assert "96×64" in text_of(doc)
        await chat.press("ra:1")
        await chat.wait_button("ps:")
        await chat.text("/history")
        history = await chat.wait_text("recent results")
        assert "ra:1" in buttons_of(history)
        await chat.text("/styles")  # gallery of thumbnails, then the list
        await chat.wait(["sendMediaGroup", "sendPhoto"])
        await chat.wait_text("Styles:")
        await chat.press("rh:1")  # high quality re-run: Gatys with the preset's picture
        hq = await chat.wait_result(lambda c: "High quality" in text_of(c))
        assert "rh:" not in "".join(buttons_of(hq))

    jobs = rows(settings, "SELECT status, preset, params FROM jobs ORDER BY id")
    assert [j[0] for j in jobs] == ["done"] * 5 and all(j[1] for j in jobs)
    assert rows(settings, "SELECT count(*) FROM events WHERE user_id = 101")[0][0] == 10  # every request recorded
    assert rows(settings, "SELECT count(*) FROM events WHERE outcome = 'error'")[0][0] == 0


async def test_own_style_flow_with_progress(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    async with running_bot(settings):
        chat = UserChat(tg, 102)
        await _menu(chat)
        await chat.press("ow:1")
        await chat.wait_text("send me the picture")
        await chat.text("what now?")  # text at the wrong moment: a hint, nothing queued
        await chat.wait_text("waiting for the style picture")
        await chat.photo(picture(80, 80, seed=7))
        result = await chat.wait_result()
        assert max(_decode(tg.sent_photos(102)[-1]).size) == settings.output_size
        assert "your style" in text_of(result)
    job = rows(settings, "SELECT status, method, style_image_id, timings FROM jobs")
    assert job[0][0] == "done" and job[0][1] in ("adain", "gatys") and job[0][2] is not None and job[0][3]


async def test_high_quality_progress_and_cancel(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=400, progress_interval=0.05)
    async with running_bot(settings):
        chat = UserChat(tg, 103)
        await _menu(chat)
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=3))
        await chat.wait_text("%", method="editMessageText")  # progress in percent, same status message
        await chat.press("x:1")
        await chat.wait_text("Cancelled", method="editMessageText")
        await chat.text("/cancel")
        await chat.wait_text("nothing to cancel")
    assert rows(settings, "SELECT status FROM jobs") == [("cancelled",)]
    assert not [c for c in tg.calls if call_method(c) == "sendPhoto" and "Preview" not in text_of(c)]  # no result


async def test_high_quality_shows_a_preview_then_the_result(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=10, preview_interval=0.01, progress_interval=0.05)
    async with running_bot(settings):
        chat = UserChat(tg, 112)
        await _menu(chat)
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=6))
        preview = await chat.wait("sendPhoto", lambda c: "Preview" in text_of(c))
        result = await chat.wait_result(lambda c: "High quality" in text_of(c))
        assert "rs:1:50" in buttons_of(result)
        await chat.wait("deleteMessage", lambda c: c.params.get("message_id") == preview.result["message_id"])
    assert rows(settings, "SELECT status, method FROM jobs") == [("done", "gatys")]


async def test_cancel_command_cancels_queued_jobs(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=400, workers=1, max_jobs_per_user=3)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 104)
        await _menu(chat)
        # a high-quality job runs (a user has one at a time), a quick one waits behind it
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=4))
        await chat.wait_text("In the queue")
        await chat.wait_text("%", method="editMessageText")
        menu = next(m for m in reversed(tg.messages(104)) if any(
            b.get("callback_data", "").startswith("ps:") for b in tg.buttons(m)))
        await chat.press(next(b["callback_data"] for b in tg.buttons(menu) if b["callback_data"].startswith("ps:")))
        await chat.wait_text("In the queue")
        await chat.text("/cancel")
        await chat.wait_text("Cancelled 2")
        await asyncio.sleep(0.5)
    assert rows(settings, "SELECT status FROM jobs") == [("cancelled",), ("cancelled",)]


async def test_restart_recovers_running_job(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=20, workers=1, progress_interval=0.05)
    chat = UserChat(tg, 105)
    async with running_bot(settings):
        await _menu(chat)
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=2))
        await chat.wait_text("%", method="editMessageText")
    assert rows(settings, "SELECT status FROM jobs") == [("running",)]  # stopped mid-job: not lost
    async with running_bot(settings):
        await chat.wait_result(timeout=90)
    assert rows(settings, "SELECT status, attempts FROM jobs") == [("done", 2)]


async def test_five_concurrent_users(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    users = [UserChat(tg, 200 + i) for i in range(5)]
    async with running_bot(settings):
        menus = await asyncio.gather(*(_menu(u, seed=i) for i, u in enumerate(users)))
        for user, (_, menu) in zip(users, menus, strict=True):
            await user.press(next(d for d in menu if d.startswith("ps:")))
        await asyncio.gather(*(u.wait_result(timeout=90) for u in users))
    assert rows(settings, "SELECT count(*), count(DISTINCT user_id) FROM jobs WHERE status = 'done'") == [(5, 5)]


async def test_bad_inputs_get_friendly_replies(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    chat = UserChat(tg, 106)
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(tiny, "PNG")
    thin = picture(400, 16, seed=1, fmt="PNG")
    async with running_bot(settings):
        await _resolve_all([tg.user_sends_sticker(106)])
        await chat.wait_text("Stickers")
        await _resolve_all([tg.user_sends_animation(106)])  # not a real mp4 behind it
        await chat.wait_text("can't use that GIF")
        await _resolve_all([tg.user_sends_video(106)])
        await chat.wait_text("can't use that video")
        await _resolve_all([tg.user_sends_voice(106)])
        await chat.wait_text("voice")
        await chat.document(b"%PDF-1.4 hello", "paper.pdf", "application/pdf")
        await chat.wait_text("isn't a picture")
        await chat.document(b"\xff\xd8\xff\xe0 definitely not a jpeg", "broken.jpg", "image/jpeg")
        await chat.wait_text("can't use that picture")
        await chat.document(tiny.getvalue(), "tiny.png", "image/png")
        await chat.wait_text("too small")
        await chat.document(thin, "thin.png", "image/png")
        await chat.wait_text("long and thin")
        await chat.document(picture(64, 64), "huge.jpg", "image/jpeg", file_size=25 * 1024 * 1024)
        await chat.wait_text("20 MB")
        await _resolve_all([tg.user_sends_photo(106, picture(64, 64), file_size=21 * 1024 * 1024)])
        await chat.wait_text("20 MB")
        await chat.document(_png_header_bomb(12000, 12000), "bomb.png", "image/png")
        await chat.wait_text("too large")
        await chat.text("hello bot")
        await chat.wait_text("Send me a photo")
        await chat.text("/frobnicate")
        await chat.wait_text("don't know that command")
        await _menu(chat)  # still works after all that
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 0
    events = rows(settings, "SELECT kind, outcome FROM events WHERE user_id = 106 ORDER BY id")
    assert len(events) == 14
    assert [o for _, o in events[:13]] == ["rejected"] * 13 and events[13] == ("photo", "accepted")
    assert rows(settings, "SELECT count(*) FROM events WHERE outcome = 'error'")[0][0] == 0


def _png_header_bomb(width: int, height: int) -> bytes:
    """A valid little PNG whose header claims ``width`` x ``height`` (never decoded that large)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


async def _resolve_all(values: list) -> None:
    for value in values:
        if hasattr(value, "__await__"):
            await value


async def test_limits_are_friendly(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=400, max_jobs_per_user=1)
    async with running_bot(settings):
        chat = UserChat(tg, 107)
        await _menu(chat)
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=3))
        await chat.wait_text("In the queue")
        await chat.press("hq:1")
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=4))
        await chat.wait_text("in progress")
        await chat.text("/cancel")
        await chat.wait_text("Cancelled")
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 1
    assert rows(settings, "SELECT reason FROM events WHERE outcome = 'rejected'") == [("limit",)]


async def test_settings_apply_and_privacy_deletes_everything(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    async with running_bot(settings):
        chat = UserChat(tg, 108)
        await chat.text("/settings")
        await chat.wait_button("se:s:50")
        await chat.press("se:s:50")
        await chat.wait_text("Strength: 50%", method="editMessageText")
        await chat.press("se:c:0")
        await chat.wait_text("Keep original colours: on", method="editMessageText")
        await _menu(chat)
        await chat.press("ow:1")
        await chat.wait_text("send me the picture")
        await chat.photo(picture(80, 80, seed=9))
        result = await chat.wait_result()
        assert "strength 50%" in text_of(result) and "🎨 Keep colours: on" in buttons_of(result).values()
        files = list(settings.data_dir.rglob("*.png")) + list(settings.data_dir.rglob("*.jpg"))
        assert files
        await chat.text("/privacy")
        await chat.wait_button("pv:ask")
        await chat.press("pv:ask")
        await chat.wait_button("pv:yes", method="editMessageText")
        await chat.press("pv:yes")
        await chat.wait_text("deleted your", method="editMessageText")
    for table in ("users", "jobs", "images", "events"):
        assert rows(settings, f"SELECT count(*) FROM {table} WHERE {'id' if table == 'users' else 'user_id'} = 108") \
            == [(0,)]
    assert not any(f.exists() for f in files)


async def test_admin_commands_and_preset_toggle(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, admin_ids="900")
    ensure_presets(settings)
    async with running_bot(settings):
        user, admin = UserChat(tg, 109), UserChat(tg, 900)
        for command in ("/stats", "/presets", "/train sunflowers"):
            await user.text(command)
            await user.wait_text("only for the bot's admins")
        await admin.text("/stats")
        stats = await admin.wait_text("Users:")
        assert "Device: cpu" in text_of(stats) and "Queue: 0 waiting" in text_of(stats)
        await admin.text("/presets")
        listing, toggle = await admin.wait_button("ap:t:")
        name = buttons_of(listing)[toggle].split(" ", 1)[1]
        await admin.press(toggle)
        await admin.wait_text(f"🚫 {name}", method="editMessageText")
        _, menu = await _menu(user)
        assert toggle.replace("ap:t:", "ps:1:") not in menu  # the disabled preset left the menu
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 0
    assert rows(settings, "SELECT enabled FROM presets WHERE id = ?", int(toggle.split(":")[2])) == [(0,)]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own RetryAfter message
async def test_flood_control_and_blocked_users_break_nothing(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat, gone = UserChat(tg, 110), UserChat(tg, 111)
        _, menu = await _menu(chat)
        _, other_menu = await _menu(gone, seed=2)
        tg.flood("editMessageText", times=50, retry_after=1)  # status edits get skipped, never fatal
        tg.flood("sendPhoto", times=1, retry_after=1)  # the result waits out flood control once
        await chat.press(next(d for d in menu if d.startswith("ps:")))
        await chat.wait_result(timeout=60)
        tg.block(111)  # this user blocked the bot after asking
        await gone.press(next(d for d in other_menu if d.startswith("ps:")))
        await wait_rows(settings, "SELECT count(*) FROM jobs WHERE status = 'failed'", [(1,)])
    assert sorted(rows(settings, "SELECT user_id, status FROM jobs")) == [(110, "done"), (111, "failed")]
