"""The HTTP front end under test: the real service (``bot.standalone``: migrations, in-process workers, the real
stylizer at small sizes) on a free port of 127.0.0.1, and a small client for its multipart forms."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from bot_helpers import picture
from postgres import free_port

from bot.config import Settings
from bot.standalone import serve


def api_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "var", "bot_token": "", "stylizer_device": "cpu",
                              "output_size": 64, "max_output_size": 256, "workers": 2, "gatys_steps": 3,
                              "progress_interval": 0.1, "http_listen": f"127.0.0.1:{free_port()}"}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[str]:
    """The HTTP service alone (no bot token), as ``python -m bot`` runs it; yields its base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    base = f"http://{settings.http_listen}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if task.done():
                task.result()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/healthz") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.1)
    try:
        yield base
    finally:
        stop.set()
        await task


def form(files: dict[str, bytes | list[bytes]], **fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in files.items():
        for i, blob in enumerate(value if isinstance(value, list) else [value]):
            data.add_field(name, blob, filename=f"{name}_{i}.bin", content_type="application/octet-stream")
    for name, value in fields.items():
        data.add_field(name, str(value))
    return data


def png(width: int, height: int, seed: int = 1) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(picture(width, height, seed=seed))).save(out, "PNG")
    return out.getvalue()
