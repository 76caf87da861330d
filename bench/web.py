"""The web studio's numbers, printed as JSON: page weight without thumbnails (HTML, CSS, JS as served; goal <= 300
KB), and the time from clicking "Stylize" to the result on screen for a 12 MP photo with a preset (the browser's
downscaling and the upload included), in Debian's Chromium driven by Playwright against ``python -m bot`` without
a token on 127.0.0.1.

    .venv/bin/python bench/web.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from postgres import free_port  # noqa: E402


def _photo_12mp(path: Path) -> int:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    rgb = np.stack([np.sin(x / 37), np.cos(y / 23), np.sin((x + y) / 51)], -1) * 0.45 + 0.5
    rgb += np.random.default_rng(0).normal(0, 0.05, rgb.shape)
    out = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype("uint8")).save(out, "JPEG", quality=92)
    path.write_bytes(out.getvalue())
    return len(out.getvalue())


def _uploaded_kb(db: Path) -> list[int]:
    """What the page sent as the content (the service keeps each upload as a blob)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT b.size FROM images i JOIN blobs b ON b.id = i.blob_id").fetchall()
    return [round(size / 1024) for (size,) in rows]


async def main(args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright, expect

    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    listen = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(folder / "var"), HTTP_LISTEN=listen, LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "-m", "bot"], env=env, cwd=folder, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert "Stylebot HTTP service" in server.stdout.readline()  # type: ignore[union-attr]
        base = f"http://{listen}"
        weight = {}
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/studio/studio.css", "/studio/studio.js"):
                async with http.get(base + path) as r:
                    weight[path] = len(await r.read())
        photo = folder / "photo_12mp.jpg"
        photo_bytes = _photo_12mp(photo)
        seconds: list[float] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = await browser.new_page()
            await page.goto(base + "/")
            await page.get_by_role("radiogroup", name="Style").get_by_role("radio", name="Candy").check()
            for _ in range(args.repeats):
                await page.get_by_label("Photo").set_input_files(str(photo))
                t0 = time.perf_counter()
                await page.get_by_role("button", name="Stylize").click()
                await expect(page.get_by_role("status")).to_have_text("Done.", timeout=300_000)
                seconds.append(time.perf_counter() - t0)
                await page.reload()
                await page.get_by_role("radiogroup", name="Style").get_by_role("radio", name="Candy").check()
            await browser.close()
        return {"page_weight_kb_without_thumbnails": round(sum(weight.values()) / 1024, 1),
                "files_bytes": weight, "photo_mb": round(photo_bytes / 2**20, 2), "photo_px": "4000x3000",
                "uploaded_kb": _uploaded_kb(folder / "var" / "bot.db"),
                "click_to_result_s": [round(s, 2) for s in seconds],
                "click_to_result_median_s": round(statistics.median(seconds), 2), "cpus": os.cpu_count()}
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=1))
