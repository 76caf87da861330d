"""End-to-end, round two: Russian, albums, true full resolution, all styles, HEIC, deep links, sharing,
mixing, the own-style wait's expiry, replies to the user's photo, admin alerts and menus."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from bot_helpers import (
    UserChat,
    buttons_of,
    call_params,
    ensure_methods,
    ensure_presets,
    make_settings,
    picture,
    rows,
    running_bot,
    text_of,
)
from PIL import Image

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _methods() -> None:
    ensure_methods()


def _png(width: int, height: int, seed: int = 3, fmt: str = "PNG") -> bytes:
    image = Image.open(io.BytesIO(picture(width, height, seed=seed)))
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def _preset_button(call) -> str:  # type: ignore[no-untyped-def]
    return next(d for d in buttons_of(call) if d.startswith("ps:"))


async def test_russian_user_gets_russian_menus(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, admin_ids="900")
    ensure_presets(settings)
    async with running_bot(settings):
        tg.user(301, language_code="ru")
        chat = UserChat(tg, 301)
        await chat.text("/start")
        start = await chat.wait_text("Привет")
        assert "Команды:" in text_of(start) and "/language" in text_of(start)
        assert "📷 Попробовать на примере" in buttons_of(start).values()
        await chat.photo(picture(96, 64, seed=1))
        menu, _ = await chat.wait_button("ps:")
        assert "Выберите стиль" in text_of(menu)
        labels = set(buttons_of(menu).values())
        assert {"🖼 Все стили сразу", "🎨 Любая картинка как стиль"} <= labels
        await chat.press(_preset_button(menu))
        await chat.wait_text("В очереди")
        result = await chat.wait_result()
        assert "сила 100%" in text_of(result) and "🔁 Другой стиль" in buttons_of(result).values()
        # /language overrides the app's language
        await chat.text("/language")
        await chat.wait_button("lg:")
        await chat.press("lg:en")
        await chat.wait_text("Language: English", method="editMessageText")
        await chat.text("/help")
        await chat.wait_text("how it works")
    # command menus and descriptions per language; the admins' menu has their commands too
    default = {c["command"] for c in tg.commands['{"type": "default"}|']}
    russian = tg.commands['{"type": "default"}|ru']
    admin = {c["command"] for c in tg.commands['{"chat_id": 900, "type": "chat"}|']}
    assert "train" not in default and {"train", "stats", "presets"} <= admin and default < admin
    assert any(c["description"] == "как это работает" for c in russian)
    assert "Пришлите фото" in tg.descriptions["description|ru"] and tg.descriptions["short_description|"]
    assert rows(settings, "SELECT locale FROM jobs") == [("ru",)]


async def test_album_gets_one_menu_and_comes_back_as_one_album(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, album_wait=0.5)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 302)
        mark = tg.mark()
        sent = tg.user_sends_album(302, [picture(96, 64, seed=s) for s in (1, 2, 3)])
        for update in sent:
            await update
        menu, preset = await chat.wait_button("ps:")
        assert "3" in text_of(menu) and not any(d.startswith("hq:") for d in buttons_of(menu))
        await asyncio.sleep(1.0)
        menus = [c for c in tg.calls[mark:] if c.method == "sendMessage" and any(
            d.startswith("ps:") for d in buttons_of(c))]
        assert len(menus) == 1  # one menu for the three photos
        await chat.press(preset)
        album = await chat.wait("sendMediaGroup")
        media = call_params(album)["media"]
        assert len(media) == 3 and all(item["type"] == "photo" for item in media)
        buttons, _ = await chat.wait_button("rf:")
        files = sorted(d for d in buttons_of(buttons) if d.startswith("rf:"))
        assert len(files) == 3
        await chat.press(files[1])  # the second photo's own full-resolution file
        doc = await chat.wait("sendDocument")
        assert doc.params.get("document") or doc.files
    jobs = rows(settings, "SELECT kind, status, inputs FROM jobs ORDER BY id")
    assert jobs[0][0] == "album" and jobs[0][1] == "done" and len(eval(jobs[0][2])) == 3
    assert jobs[1][0] == "stylize" and jobs[1][1] == "done"


async def test_full_resolution_of_a_large_document_is_its_own_size(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, max_output_size=4096, tile_size=1024)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 303)
        await chat.document(_png(2400, 1600), "big.png", "image/png")
        await chat.pick_preset()
        result = await chat.wait_result()
        assert "rf:1:0" in buttons_of(result)
        await chat.press("rf:1:0")
        await chat.wait("sendDocument", timeout=150)
        name, data = tg.sent_documents(303)[-1]
        full = Image.open(io.BytesIO(data))
        assert name.endswith(".png") and full.format == "PNG" and full.size == (2400, 1600)


async def test_heic_and_avif_documents_get_the_style_menu(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 304)
        await chat.document(_png(120, 90, fmt="HEIF"), "IMG_0001.HEIC", "image/heic")
        await chat.wait_button("ps:")
        await chat.document(_png(120, 90, seed=5, fmt="AVIF"), "pic.avif", "application/octet-stream")
        await chat.wait_button("ps:")
    assert next(r[0] for r in rows(settings, "SELECT path FROM images ORDER BY id")).endswith(".heic")


async def test_all_styles_sheet_then_pick_one(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, sheet_size=64)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 305)
        await chat.photo(picture(96, 64, seed=2))
        menu, _ = await chat.wait_button("al:")
        assert "🖼 Try all styles" in buttons_of(menu).values()
        await chat.press(next(d for d in buttons_of(menu) if d.startswith("al:")))
        sheet = await chat.wait_result(lambda c: "styles on your photo" in text_of(c))
        presets = [d for d in buttons_of(sheet) if d.startswith("ps:")]
        listed = rows(settings, "SELECT count(*) FROM presets WHERE enabled AND available")[0][0]
        assert len(presets) == listed >= 2
        image = Image.open(io.BytesIO(tg.sent_photos(305)[-1]))
        assert image.width >= 2 * 64  # a grid, not one picture
        await chat.press(presets[0])
        await chat.wait_result(lambda c: "strength" in text_of(c))
    assert [r[0] for r in rows(settings, "SELECT kind FROM jobs ORDER BY id")] == ["sheet", "stylize"]


async def test_deep_link_share_and_inline_mode(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        preset = rows(settings, "SELECT name FROM presets WHERE enabled ORDER BY id")[0][0]
        chat = UserChat(tg, 306)
        await chat.text(f"/start style_{preset}")
        await chat.wait(["sendPhoto", "sendMessage"], lambda c: "Send me a photo" in text_of(c))
        sent = await chat.photo(picture(96, 64, seed=4))
        result = await chat.wait_result()  # no menu: the deep link's style is applied right away
        assert call_params(result)["reply_parameters"]["message_id"] == sent["message"]["message_id"]
        markup = call_params(result)["reply_markup"]
        share = [b for row in markup["inline_keyboard"] for b in row if "switch_inline_query" in b]
        assert share and share[0]["switch_inline_query"] == "#1"
        await tg.user_inline_query(306, "#1")
        answer = await tg.wait_for("answerInlineQuery")
        results = answer.params["results"]
        if isinstance(results, str):
            import json

            results = json.loads(results)
        assert len(results) == 1 and results[0]["type"] == "photo" and results[0]["photo_file_id"]
        await tg.user_inline_query(307, "")  # someone else sees none of 306's results
        other = await tg.wait_for("answerInlineQuery")
        assert other.params["results"] in ([], "[]")
    assert rows(settings, "SELECT preset, status FROM jobs") == [(preset, "done")]


async def test_mix_in_a_second_style(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 308)
        await chat.photo(picture(96, 64, seed=6))
        await chat.pick_preset()
        result = await chat.wait_result()
        if "rm:1" not in buttons_of(result):
            pytest.fail("presets of this build cannot be mixed")  # the shipped CIN presets can
        await chat.press("rm:1")
        mix_menu, _choice = await chat.wait_button("mx:1:")
        pick = next(d for d in buttons_of(mix_menu) if d.startswith("mx:1:") and d.endswith(":30"))
        since = tg.mark()
        await chat.press(pick)
        status = await chat.wait("sendMessage", lambda c: c.index >= since and "In the queue" in text_of(c))
        assert "about 5 s" in text_of(status)  # an ETA from the recent jobs' times (rounded up to 5 s)
        assert call_params(status)["reply_parameters"]["message_id"] == 1  # it quotes the user's photo
        mixed = await chat.wait_result(lambda c: "+" in text_of(c))
        assert "70%" in text_of(mixed) and "30%" in text_of(mixed)


async def test_style_wait_expires_and_uses_force_reply(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, style_wait_minutes=0.01)  # 0.6 s
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 309)
        await chat.photo(picture(96, 64, seed=1))
        await chat.wait_button("ow:")
        await chat.press("ow:1")
        prompt = await chat.wait_text("send me the picture")
        assert call_params(prompt)["reply_markup"]["force_reply"] is True
        await asyncio.sleep(1.0)
        await chat.photo(picture(80, 80, seed=7))  # too late: a new photo, not a style
        await chat.wait_button("ps:")
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 0


async def test_errors_alert_the_admins_with_the_event_id(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, admin_ids="900", alert_interval=60)
    tg.user(900)  # the admin has talked to the bot before, so it may write to them
    async with running_bot(settings):
        chat = UserChat(tg, 310)
        tg.fail("sendMessage", 400, "Bad Request: chat is in a bad mood", times=1)
        await chat.text("/help")
        alert = await tg.wait_for("sendMessage", lambda c: c.params.get("chat_id") == 900)
        assert "Error in update" in alert.params["text"] and "event #" in alert.params["text"]
        await chat.wait_text("something went wrong")
        tg.fail("sendMessage", 400, "Bad Request: again", times=1)
        await chat.text("/help")  # a second error within the interval: counted, not sent
        await chat.wait_text("something went wrong")
    assert len([c for c in tg.calls if c.method == "sendMessage" and c.params.get("chat_id") == 900]) == 1
    assert rows(settings, "SELECT count(*) FROM events WHERE outcome = 'error'")[0][0] == 2


async def test_sample_photo_button_shows_a_menu(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 311)
        await chat.text("/start")
        await chat.wait_button("sm")
        await chat.press("sm")
        sample = await chat.wait("sendPhoto", lambda c: "sample photo" in text_of(c))
        menu, preset = await chat.wait_button("ps:")
        assert call_params(menu)["reply_parameters"]["message_id"] == sample.result["message_id"]
        await chat.press(preset)
        await chat.wait_result(lambda c: "strength" in text_of(c))
    assert rows(settings, "SELECT file_unique_id, width FROM images") == [("sample", 512)]


async def test_the_same_bot_on_postgresql(tg, tmp_path: Path, postgres_url: str) -> None:
    """DATABASE_URL=postgresql+asyncpg://...: the same models, migrations and flows (album included)."""
    import asyncpg

    settings = make_settings(tg, tmp_path, database_url=postgres_url, album_wait=0.5)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 312)
        await chat.photo(picture(96, 64, seed=1))
        await chat.pick_preset()
        await chat.wait_result()
        for update in tg.user_sends_album(312, [picture(96, 64, seed=s) for s in (2, 3)]):
            await update
        await chat.pick_preset()
        await chat.wait("sendMediaGroup")
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        jobs = [tuple(r) for r in await conn.fetch("SELECT kind, status FROM jobs ORDER BY id")]
        events = await conn.fetchval("SELECT count(*) FROM events WHERE user_id = 312")
    finally:
        await conn.close()
    assert jobs == [("stylize", "done"), ("album", "done")] and events == 5
