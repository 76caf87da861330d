"""Issue 29's abuse scenarios, each through the fake Bot API against the real bot: strangers' and forged button
data, odd inline queries, /privacy on every machine, a clip whose header lies, bounded high-quality jobs, disabled
presets behind old buttons and deep links, ids never reused, a quick job's Bot API budget, and two webhook
replicas on PostgreSQL receiving the same update at once."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from bot_helpers import (
    UserChat,
    buttons_of,
    call_method,
    call_params,
    ensure_methods,
    ensure_presets,
    make_settings,
    picture,
    rows,
    running_bot,
    text_of,
    wait_healthy,
)
from clips import lying_mkv
from postgres import free_port

from bot import retention
from bot.db import create_engine, migrate, session_factory
from bot.services import Services
from bot.web import SECRET_HEADER, serve

pytestmark = pytest.mark.timeout(180)
ADMIN = 900


@pytest.fixture(autouse=True)
def _methods() -> None:
    ensure_methods()


def _to(tg, chat_id: int, since: int = 0, methods: tuple[str, ...] = ()) -> list:  # type: ignore[no-untyped-def]
    """Calls to ``chat_id`` from index ``since`` (of ``methods``, if given)."""
    return [c for c in tg.calls[since:] if str(call_params(c).get("chat_id")) == str(chat_id)
            and (not methods or call_method(c) in methods)]


async def _answered(tg, count: int, since: int) -> None:  # type: ignore[no-untyped-def]
    await tg.wait_until(lambda: sum(call_method(c) == "answerCallbackQuery" for c in tg.calls[since:]) >= count,
                        timeout=30)


async def test_strangers_buttons_and_forged_ids_are_refused_quietly(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, admin_ids=str(ADMIN))
    ensure_presets(settings)
    async with running_bot(settings):
        owner, stranger = UserChat(tg, 501), UserChat(tg, 502)
        await owner.photo(picture(96, 64, seed=1))
        _, preset = await owner.wait_button("ps:")
        image_id = preset.split(":")[1]
        await owner.press(preset)
        result = await owner.wait_result()
        job_buttons = [d for d in buttons_of(result) if d.startswith("r")]
        assert job_buttons
        await stranger.text("/help")
        await stranger.wait_text("/start")
        since = tg.mark()
        # the owner's menu and result buttons, pressed by someone else
        stolen = [preset, f"pg:{image_id}:1", f"hq:{image_id}", f"ow:{image_id}", f"al:{image_id}", *job_buttons]
        # ids no database holds, digits of other scripts, data of no route
        forged = ["ps:123456789012345678901234567890:1", "rs:99999999999999999999999:50", "x:" + "9" * 30,
                  "pg:1:" + "9" * 25, "rf:1:²³", "ps:١:1", "zz:1"]
        for data in stolen:
            await stranger.forge_press(data)
        for data in forged:
            await owner.forge_press(data)
        await _answered(tg, len(stolen) + len(forged), since)
        for query in ("#²³", "#" + "9" * 30, "#-1", "#١٢"):
            await owner.inline(query)
        await tg.wait_until(lambda: sum(call_method(c) == "answerInlineQuery" for c in tg.calls[since:]) >= 4)
        await owner.text("/help")  # and the bot goes on answering
        await owner.wait_text("/start")
    assert not _to(tg, 502, since, ("sendPhoto", "sendDocument", "sendVideo", "editMessageReplyMarkup"))
    assert not rows(settings, "SELECT id FROM jobs WHERE user_id = 502")
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 1  # the owner's one job, nothing more
    assert not _to(tg, ADMIN)  # no alert: these are refused events, not errors
    assert not rows(settings, "SELECT reason FROM events WHERE outcome = 'error'")


async def test_privacy_leaves_no_file_on_any_machine(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    # a second machine (a worker) on the same database keeps its own folders
    worker_settings = make_settings(tg, tmp_path / "worker", database_url=settings.database_url)
    async with running_bot(settings):
        chat = UserChat(tg, 511)
        await chat.photo(picture(200, 150, seed=2))
        _, preset = await chat.wait_button("ps:")
        await chat.press(preset)
        result = await chat.wait_result()
        full = next(d for d in buttons_of(result) if d.startswith("rf:"))
        await chat.press(full)
        await chat.wait("sendDocument")
        other = UserChat(tg, 512)  # someone else's files stay
        await other.photo(picture(96, 64, seed=3))
        await other.wait_button("ps:")
        fetched = worker_settings.images_dir / "511" / "fetched" / "copy.jpg"
        rendered = worker_settings.results_dir / "511" / "7.png"
        for path in (fetched, rendered):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        assert list((settings.images_dir / "511").rglob("*.*")) and list((settings.results_dir / "511").rglob("*.*"))
        await chat.text("/privacy")
        await chat.wait_button("pv:ask")
        await chat.press("pv:ask")
        await chat.wait_button("pv:yes", method="editMessageText")
        await chat.press("pv:yes")
        await chat.wait_text("deleted your", method="editMessageText")
    here = [p for p in settings.data_dir.rglob("*") if p.is_file() and "511" in p.parts]
    assert here == []
    engine = create_engine(settings.database_url)
    try:
        removed = await retention.sweep(Services(settings=worker_settings, engine=engine,
                                                 sessions=session_factory(engine)))
    finally:
        await engine.dispose()
    assert removed == 2 and not fetched.exists() and not rendered.exists()
    assert list((settings.images_dir / "512").iterdir())  # the other user's photo is still there
    assert not rows(settings, "SELECT id FROM jobs WHERE user_id = 511")


async def test_retention_expires_old_files(tmp_path: Path, tg) -> None:
    settings = make_settings(tg, tmp_path, file_retention_hours=1)
    engine = create_engine(settings.database_url)
    await migrate(engine)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    old, new, part = (settings.results_dir / "lost.png", settings.images_dir / "fresh.jpg",
                      settings.images_dir / "x.jpg.part")
    for path in (old, new, part):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(part, (time.time() - 4000, time.time() - 4000))
    try:
        assert await retention.sweep(services) == 2
    finally:
        await engine.dispose()
    assert new.exists() and not old.exists() and not part.exists()


async def test_a_clip_whose_header_lies_is_refused(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, max_video_seconds=2)
    ensure_presets(settings)
    clip = lying_mkv(tmp_path / "lie.mkv", seconds=8, claimed=1)  # 8 s of frames, 1 s in the header
    async with running_bot(settings):
        chat = UserChat(tg, 521)
        sent = tg.user_sends_video(521, clip.read_bytes(), duration=1, width=64, height=48)
        if hasattr(sent, "__await__"):
            await sent
        _, preset = await chat.wait_button("ps:")
        await chat.press(preset)
        failure = await chat.wait("editMessageText", lambda c: "longer than" in text_of(c))
        assert "2 s" in text_of(failure)
    assert not _to(tg, 521, 0, ("sendVideo", "sendAnimation", "sendDocument"))
    assert rows(settings, "SELECT status FROM jobs") == [("failed",)]


async def test_high_quality_full_resolution_is_bounded(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, max_slow_size=96, max_output_size=256, gatys_steps=3)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 531)
        await chat.photo(picture(240, 180, seed=4))
        _, hq = await chat.wait_button("hq:")
        await chat.press(hq)
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=5))
        result = await chat.wait_result(lambda c: "High quality" in text_of(c))
        await chat.press(next(d for d in buttons_of(result) if d.startswith("rf:")))
        document = await chat.wait("sendDocument")
        assert "96×72" in text_of(document)  # capped, not the photo's 240 px
        # a second high-quality job while one waits is refused
        await chat.press(hq)
        await chat.wait_text("High quality")
    slow = [json.loads(p) for m, p in rows(settings, "SELECT method, params FROM jobs") if m != "adain" and "cin"
            not in m]
    assert slow and all(int(p.get("size", 0)) <= 96 for p in slow)


async def test_one_slow_job_per_user(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, gatys_steps=400, progress_interval=0.05)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 532)
        await chat.photo(picture(96, 64, seed=1))
        _, hq = await chat.wait_button("hq:")
        await chat.press(hq)
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=5))
        await chat.wait_text("%", method="editMessageText")
        await chat.press(hq)
        await chat.wait_text("High quality")
        await chat.photo(picture(80, 80, seed=6))
        await chat.wait_text("already have a high-quality picture in progress")
        await chat.text("/cancel")
        await chat.wait_text("Cancelled")
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 1


async def test_disabled_presets_stay_disabled_behind_old_buttons_and_links(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 541)
        await chat.photo(picture(96, 64, seed=1))
        _, preset = await chat.wait_button("ps:")
        await chat.press(preset)
        result = await chat.wait_result()
        name = rows(settings, "SELECT preset FROM jobs")[0][0]
        with sqlite3.connect(settings.data_dir / "bot.db") as db:  # an admin disables it
            db.execute("UPDATE presets SET enabled = 0 WHERE name = ?", (name,))
        await chat.press(next(d for d in buttons_of(result) if d.startswith("rs:")))
        await chat.wait_text("no longer available")
        await chat.text(f"/start style_{name}")
        await chat.wait_text("isn't available")
        await chat.press(preset)  # the old menu
        await chat.wait_text("no longer available")
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 1


async def test_job_ids_are_never_reused(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path)
    ensure_presets(settings)
    async with running_bot(settings):
        first, second = UserChat(tg, 551), UserChat(tg, 552)
        await first.photo(picture(96, 64, seed=1))
        await first.pick_preset()
        await first.wait_result()
        (old_id,) = rows(settings, "SELECT max(id) FROM jobs")[0]
        await first.text("/privacy")
        await first.wait_button("pv:ask")
        await first.press("pv:ask")
        await first.wait_button("pv:yes", method="editMessageText")
        await first.press("pv:yes")
        await first.wait_text("deleted your", method="editMessageText")
        await second.photo(picture(96, 64, seed=2))
        await second.pick_preset()
        await second.wait_result()
    assert rows(settings, "SELECT id, user_id FROM jobs") == [(old_id + 1, 552)]


async def test_a_quick_job_costs_two_bot_api_calls(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, quiet_seconds=5)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 561)
        await chat.photo(picture(96, 64, seed=1))
        _, preset = await chat.wait_button("ps:")
        since = tg.mark()
        await chat.press(preset)
        await chat.wait_result()
        await asyncio.sleep(0.5)
    calls = sorted(call_method(c) for c in tg.calls[since:] if call_method(c) != "getFile")
    assert calls == ["answerCallbackQuery", "sendPhoto"]


async def test_webhook_replicas_run_a_duplicated_update_once(tg, tmp_path: Path, postgres_url: str) -> None:
    ports = [free_port(), free_port()]
    base = dict(webhook_url=f"http://127.0.0.1:{ports[0]}/tg/hook", webhook_secret="s3cret",
                database_url=postgres_url, album_wait=0.5)
    settings = [make_settings(tg, tmp_path / f"r{i}", webhook_listen=f"127.0.0.1:{p}", **base)
                for i, p in enumerate(ports)]
    ensure_presets(settings[0])
    ensure_presets(settings[1])
    engine = create_engine(postgres_url)
    await migrate(engine)
    await engine.dispose()
    stop = asyncio.Event()
    servers = [asyncio.create_task(serve(s, stop)) for s in settings]
    try:
        for port in ports:
            await tg.wait_until(lambda: tg.webhook is not None, timeout=60)
            await wait_healthy(port, 60)
        photo = tg.user_sends_photo(601, picture(96, 64, seed=1))
        async with aiohttp.ClientSession() as http:

            async def post(port: int, headers: dict[str, str], update: dict | None = None) -> int:
                async with http.post(f"http://127.0.0.1:{port}/tg/hook", json=update or photo,
                                     headers=headers) as response:
                    return response.status

            ok = {SECRET_HEADER: "s3cret"}
            statuses = await asyncio.gather(post(ports[0], ok), post(ports[1], ok))
            assert sorted(statuses) in ([200, 200], [200, 503]), statuses
            assert await post(ports[1], ok) == 200  # done: answered without running again
            assert await post(ports[0], {SECRET_HEADER: "sécret-ü"}) == 403
            assert await post(ports[1], {SECRET_HEADER: "wrong"}) == 403
            await asyncio.sleep(0.5)
            menus = [c for c in tg.calls if call_method(c) == "sendMessage" and any(
                d.startswith("ps:") for d in buttons_of(c))]
            assert len(menus) == 1
            # an album whose photos reach different replicas: one menu
            album = tg.user_sends_album(602, [picture(96, 64, seed=s) for s in (2, 3)])
            for port, photo in zip(ports, album, strict=True):
                assert await post(port, ok, photo) == 200
            await asyncio.sleep(3 * settings[0].album_wait + 1.0)
        album_menus = [c for c in tg.calls if call_method(c) == "sendMessage" and str(
            call_params(c).get("chat_id")) == "602" and any(d.startswith("ps:") for d in buttons_of(c))]
        assert len(album_menus) == 1, [(text_of(c), c.time) for c in album_menus]
    finally:
        stop.set()
        await asyncio.gather(*servers)
    assert rows(settings[0], "SELECT count(*) FROM processed_updates WHERE processed_at IS NOT NULL")[0][0] == 3


async def test_amplification_is_bounded(tg, tmp_path: Path) -> None:
    """A photo over the size limit is refused before any download; /styles sends each thumbnail's bytes once; a
    sheet of every style costs one picture per style against the per-minute limit."""
    settings = make_settings(tg, tmp_path, max_image_side=200, rate_per_minute=3)
    ensure_presets(settings, count=4)
    async with running_bot(settings):
        chat = UserChat(tg, 571)
        since = tg.mark()
        await chat.photo(picture(320, 200, seed=1))
        await chat.wait_text("longest side may be at most 200 px")
        assert not [c for c in tg.calls[since:] if call_method(c) == "getFile"]
        galleries = []
        for _ in range(2):
            mark = tg.mark()
            await chat.text("/styles")
            await chat.wait_text("Styles:")
            galleries.append([c for c in tg.calls[mark:] if call_method(c) in ("sendMediaGroup", "sendPhoto")])
        assert galleries[0] and all(c.files for c in galleries[0])  # uploaded once
        assert galleries[1] and not any(c.files for c in galleries[1])  # then by file_id
        await chat.photo(picture(160, 120, seed=2))
        menu, sheet = await chat.wait_button("al:")
        await chat.press(sheet)
        await chat.wait("sendPhoto")  # the sheet
        await chat.press(next(d for d in buttons_of(menu) if d.startswith("ps:")))
        await chat.wait_text("a lot of pictures in one minute")
    assert rows(settings, "SELECT kind FROM jobs") == [("sheet",)]
