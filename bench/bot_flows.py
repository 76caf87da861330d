"""End-to-end latency of each bot flow on this machine, as JSON: the real Application, real methods and
presets, the test suite's fake Bot API on 127.0.0.1 (no Telegram needed).

    python bench/bot_flows.py [--repeats 3] [--size 512] [--photo-size 1280x853]

Per flow: seconds from the user's action (photo sent / button pressed) to the bot's answer the user is
waiting for, median of ``--repeats``: the style menu after a photo, a preset result, an own-style result,
the "all styles" sheet, an album of 3 in one style, the full-resolution file of a 2400x1600 document,
and a HEIC document's menu. Photos are ``../shared`` held-out ones (every 100th content photo).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bot_helpers import UserChat, make_settings, running_bot  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402
from PIL import Image  # noqa: E402

SHARED = Path(os.environ.get("STYLEBOT_SHARED", ROOT.parent / "shared"))


def _photos(size: tuple[int, int]) -> list[bytes]:
    files = sorted((SHARED / "data" / "content").iterdir())[::100]
    out = []
    for file in files[:6]:
        image = Image.open(file).convert("RGB")
        image.thumbnail(size)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _encode(data: bytes, fmt: str, size: tuple[int, int] | None = None) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if size:
        image = image.resize(size)
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


async def _timed(coro) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


async def run(args: argparse.Namespace) -> dict:
    photos = _photos(tuple(map(int, args.photo_size.split("x"))))  # type: ignore[arg-type]
    style = _encode(photos[-1], "JPEG")
    flows: dict[str, list[float]] = {}
    async with FakeTelegram() as tg:
        settings = make_settings(tg, Path(tempfile.mkdtemp()), output_size=args.size, max_output_size=4096,
                                 tile_size=1024, workers=2, sheet_size=192, album_wait=1.0, progress_interval=1.0)
        async with running_bot(settings):
            for r in range(args.repeats):
                user = 500 + r
                chat = UserChat(tg, user)

                async def menu(data: bytes, chat: UserChat = chat) -> str:
                    await chat.photo(data)
                    return (await chat.wait_button("ps:", timeout=300))[1]

                t0 = time.perf_counter()
                preset = await menu(photos[r % 5])
                flows.setdefault("photo -> style menu", []).append(time.perf_counter() - t0)
                flows.setdefault("preset -> result photo", []).append(await _timed(
                    _press_and_wait(chat, preset, "sendPhoto")))
                flows.setdefault("full resolution 2400x1600 document", [])
                menu_message = [m for m in tg.messages(user) if any(
                    b.get("callback_data", "").startswith("al:") for b in tg.buttons(m))][-1]
                al = next(b["callback_data"] for b in tg.buttons(menu_message) if b["callback_data"].startswith("al:"))
                flows.setdefault("all styles -> sheet", []).append(await _timed(
                    _press_and_wait(chat, al, "sendPhoto")))
                ow = next(b["callback_data"] for b in tg.buttons(menu_message) if b["callback_data"].startswith("ow:"))
                await chat.press(ow)
                await chat.wait_text("send me the picture", timeout=60)
                t0 = time.perf_counter()
                await chat.photo(style)
                await chat.wait("sendPhoto", timeout=300)
                flows.setdefault("own style picture -> result", []).append(time.perf_counter() - t0)
                # an album of 3
                t0 = time.perf_counter()
                for update in tg.user_sends_album(user, photos[:3]):
                    await update
                _, album_preset = await chat.wait_button("ps:", timeout=300)
                flows.setdefault("album of 3 -> one menu (incl. 1 s wait)", []).append(time.perf_counter() - t0)
                flows.setdefault("album preset -> album of 3", []).append(await _timed(
                    _press_and_wait(chat, album_preset, "sendMediaGroup")))
                # a 2400x1600 document, its full-resolution file
                t0 = time.perf_counter()
                await chat.document(_encode(photos[r % 5], "PNG", (2400, 1600)), "big.png", "image/png")
                _, big_preset = await chat.wait_button("ps:", timeout=300)
                flows.setdefault("2400x1600 PNG document -> menu", []).append(time.perf_counter() - t0)
                await _press_and_wait(chat, big_preset, "sendPhoto")
                job = max(int(d.split(":")[1]) for m in tg.messages(user) for d in
                          [b.get("callback_data", "") for b in tg.buttons(m)] if d.startswith("rf:"))
                flows["full resolution 2400x1600 document"].append(await _timed(
                    _press_and_wait(chat, f"rf:{job}:0", "sendDocument")))
                t0 = time.perf_counter()
                await chat.document(_encode(photos[r % 5], "HEIF"), "IMG.HEIC", "image/heic")
                await chat.wait_button("ps:", timeout=300)
                flows.setdefault("HEIC document -> menu", []).append(time.perf_counter() - t0)
    return {"machine": os.uname().nodename, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
            "output_size": args.size, "repeats": args.repeats,
            "seconds_median": {k: round(statistics.median(v), 2) for k, v in flows.items() if v},
            "seconds_all": {k: [round(x, 2) for x in v] for k, v in flows.items()}}


async def _press_and_wait(chat: UserChat, data: str, method: str) -> None:
    mark = len(chat.tg.calls)
    await chat.press(data)
    await chat.tg.wait_for(method, lambda c: c.index >= mark and str(c.params.get("chat_id")) == str(chat.user_id)
                           and "Preview" not in str(c.params.get("caption") or ""), timeout=600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--photo-size", default="1280x853")
    print(json.dumps(asyncio.run(run(ap.parse_args())), indent=2))


if __name__ == "__main__":
    main()
