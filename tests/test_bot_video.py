"""End-to-end clips: a video, a GIF animation and a video note come back stylized as the same kind."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from pathlib import Path

import pytest
from bot_helpers import UserChat, buttons_of, ensure_methods, ensure_presets, make_settings, picture, rows, running_bot
from clips import pan_frames, write_clip
from PIL import Image

from stylizer import video

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _methods() -> None:
    ensure_methods()


def _clip(tmp_path: Path, name: str, size=(96, 64), frames=12, fps=12, audio=True) -> bytes:
    scene = Image.open(io.BytesIO(picture(160, 120, seed=3)))
    return write_clip(tmp_path / name, pan_frames(scene, frames, size, 2), fps=fps, audio=audio).read_bytes()


def _probe(tmp_path: Path, data: bytes, name: str) -> video.VideoInfo:
    path = tmp_path / name
    path.write_bytes(data)
    return video.probe(path)


async def _resolve(sent) -> None:
    await sent


async def test_video_comes_back_as_a_video(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, video_size=64)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 301)
        await _resolve(tg.user_sends_video(301, _clip(tmp_path, "in.mp4"), width=96, height=64, duration=1))
        menu, preset = await chat.wait_button("ps:")
        assert "video" in menu.params["text"]
        assert not any(d.startswith("hq:") for d in buttons_of(menu))  # no high quality for clips
        await chat.press(preset)
        await chat.wait_text("In the queue")
        sent = await chat.wait("sendVideo", timeout=120)
        assert not any(d.startswith(("rf:", "rh:")) for d in buttons_of(sent))
        assert any(d.startswith("rs:") for d in buttons_of(sent))
        await chat.wait_text("Done", method="editMessageText")
    message, data = tg.sent_clips(301, "video")[-1]
    info = _probe(tmp_path, data, "out.mp4")
    assert (info.width, info.height, info.frames, info.fps, info.audio) == (64, 42, 12, Fraction(12), "aac")
    assert message["video"]["width"] == 64
    assert rows(settings, "SELECT kind, duration FROM images") == [("video", 1.0)]
    assert rows(settings, "SELECT status, result_file_id IS NOT NULL FROM jobs") == [("done", 1)]


async def test_animation_and_video_note_keep_their_kind(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, video_size=64)
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 302)
        gif = _clip(tmp_path, "anim.mp4", audio=False, frames=8)
        await _resolve(tg.user_sends_animation(302, gif, width=96, height=64, duration=1))
        menu, preset = await chat.wait_button("ps:")
        assert "GIF" in menu.params["text"]
        await chat.press(preset)
        await chat.wait("sendAnimation", timeout=120)

        note = _clip(tmp_path, "note.mp4", size=(64, 64), frames=8)
        await _resolve(tg.user_sends_video_note(302, note, length=64, duration=1))
        await chat.pick_preset()
        sent = await chat.wait("sendVideoNote", timeout=120)
        assert int(sent.params["length"]) == 64
    _, data = tg.sent_clips(302, "animation")[-1]
    assert _probe(tmp_path, data, "a.mp4").frames == 8
    _, data = tg.sent_clips(302, "video_note")[-1]
    info = _probe(tmp_path, data, "n.mp4")
    assert (info.width, info.height, info.frames) == (64, 64, 8)
    assert sorted(r[0] for r in rows(settings, "SELECT kind FROM images")) == ["animation", "video_note"]


async def test_own_style_on_a_video(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, video_size=64)
    async with running_bot(settings):
        chat = UserChat(tg, 303)
        await _resolve(tg.user_sends_video(303, _clip(tmp_path, "in.mp4", frames=6), width=96, height=64))
        _, own = await chat.wait_button("ow:")
        await chat.press(own)
        await chat.wait_text("send me the picture")
        await chat.photo(picture(80, 80, seed=9))
        await chat.wait("sendVideo", timeout=120)
    assert rows(settings, "SELECT status, style_image_id IS NOT NULL FROM jobs") == [("done", 1)]


async def test_bad_clips_are_refused_clearly(tg, tmp_path: Path) -> None:
    settings = make_settings(tg, tmp_path, max_video_seconds=0.5)
    async with running_bot(settings):
        chat = UserChat(tg, 304)
        await _resolve(tg.user_sends_video(304, _clip(tmp_path, "long.mp4", frames=12)))
        await chat.wait_text("at most 0.5 s")
        await _resolve(tg.user_sends_video(304, b"\x00\x00\x00\x18ftypmp42 junk"))
        await chat.wait_text("can't use that video")
        await _resolve(tg.user_sends_video(304, b"x", file_size=30 * 1024 * 1024))
        await chat.wait_text("20 MB")
        await asyncio.sleep(0.2)
    assert rows(settings, "SELECT count(*) FROM jobs")[0][0] == 0
    assert rows(settings, "SELECT count(*) FROM images")[0][0] == 0
    assert [r[0] for r in rows(settings, "SELECT outcome FROM events WHERE user_id = 304")] == ["rejected"] * 3
