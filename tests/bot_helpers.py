"""Shared pieces of the bot's tests: settings for a throw-away bot, running it in-process, test pictures.

The bot under test is the real ``Application`` from :func:`bot.app.build_application`, polling the fake
Bot API server of ``tests/fake_telegram.py``; only the stylization methods may be stand-ins, and only
while a real one is missing from this build (:func:`ensure_methods`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from stylizer.errors import MethodError
from stylizer.facade import Stylizer
from stylizer.manifest import Preset, save_tensors, write_preset_manifest
from stylizer.methods import MethodJob, available_methods, get_method, register


def picture(width: int = 96, height: int = 64, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A structured test picture (gradients, a disc, noise) encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([0.5 + 0.5 * np.sin(x / (6 + seed) + rng.uniform(0, 6)),
                    0.5 + 0.5 * np.cos(y / (9 + seed) + rng.uniform(0, 6)),
                    0.5 + 0.5 * np.sin((x + y) / (5 + seed))], axis=-1)
    rgb[(x - width * 0.4) ** 2 + (y - height * 0.5) ** 2 < (min(width, height) * 0.25) ** 2] *= 0.3
    rgb += rng.normal(0, 0.04, rgb.shape)
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()


def make_settings(tg: Any, tmp_path: Path, **overrides: Any) -> Settings:
    """Tiny, fast settings for a bot talking to the fake server ``tg``."""
    values: dict[str, Any] = {
        "bot_token": tg.token,
        "telegram_base_url": tg.base_url,
        "telegram_base_file_url": tg.base_file_url,
        "data_dir": tmp_path / "var",
        "stylizer_device": "cpu",
        "output_size": 64,
        "max_output_size": 128,
        "workers": 2,
        "gatys_steps": 4,
        "progress_interval": 0.1,
        "quiet_seconds": 0,  # every job announced at once (tests that count calls set their own)
        "http_listen": "",  # no HTTP front end beside the bot unless a test asks for one (on a free port)
        "rate_per_minute": 100,
        "max_jobs_per_user": 3,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[Application]:
    """Start the real Application the way ``run_polling`` does (hooks included) and stop it afterwards."""
    app = build_application(settings)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)  # type: ignore[union-attr]
    try:
        yield app
    finally:
        await app.updater.stop()  # type: ignore[union-attr]
        await app.stop()
        await app.post_stop(app)  # type: ignore[misc]
        await app.shutdown()
        await app.post_shutdown(app)  # type: ignore[misc]


def rows(settings: Settings, sql: str, *args: Any) -> list[tuple]:
    """Query the bot's database directly (what an operator would see): its SQLite file, or its PostgreSQL
    (asyncpg in a thread of its own, so this works from inside a running event loop too; ``$1`` params)."""
    if settings.uses_postgres:
        import asyncpg

        from bot.worker import asyncpg_dsn

        async def fetch() -> list[tuple]:
            conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, fetch()).result()
    path = settings.database_url.split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


async def wait_rows(settings: Settings, sql: str, expected: list[tuple], timeout: float = 30.0) -> None:
    """Poll the database until ``sql`` returns ``expected`` (for outcomes the user never sees)."""
    deadline = time.monotonic() + timeout
    while (found := rows(settings, sql)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{sql!r} gave {found}, expected {expected}")
        await asyncio.sleep(0.1)


async def wait_healthy(port: int, timeout: float = 90) -> None:
    """Wait until a ``python -m bot web`` replica on 127.0.0.1:``port`` answers its ``/healthz``."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.3)
    raise AssertionError(f"replica on {port} never came up")


# -- stand-ins, used only while a real method is missing from this build --------------------------------

class _PixelStats:
    """Own-style stand-in: moves pixel mean/std to the style's (a real, if crude, style transfer)."""

    name = "gatys"
    description = "stand-in for the Gatys method"
    accepts_images = True
    slow = True

    def available(self, manifest) -> bool:  # type: ignore[no-untyped-def]
        return True

    def run(self, job: MethodJob) -> torch.Tensor:
        steps = job.steps or 4
        for step in range(1, steps + 1):
            job.report("gatys", step, steps)
            time.sleep(0.05)
        content, style = job.content, job.styles[0].image
        assert style is not None
        mc, sc = content.mean((2, 3), keepdim=True), content.std((2, 3), keepdim=True) + 1e-5
        ms, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True)
        out = ((content - mc) / sc * ss + ms).clamp(0, 1)
        return job.strength * out + (1 - job.strength) * content


class _Tint:
    """Preset stand-in: a colour matrix stored in the preset's safetensors file."""

    name = "tint"
    description = "stand-in preset method"
    accepts_images = False
    slow = False

    def available(self, manifest) -> bool:  # type: ignore[no-untyped-def]
        return any(p.method == self.name for p in manifest.presets.values())

    def run(self, job: MethodJob) -> torch.Tensor:
        from stylizer.manifest import load_tensors

        preset = job.styles[0].preset
        assert preset is not None
        matrix = load_tensors(preset.file, preset.sha256)["matrix"].to(job.content.device)
        out = torch.einsum("ij,bjhw->bihw", matrix, job.content).clamp(0, 1)
        return job.strength * out + (1 - job.strength) * job.content


def ensure_methods() -> None:
    """Register the own-style stand-in only if neither real own-style method can run in this build."""
    for name in ("adain", "gatys"):
        try:
            if get_method(name).available(Stylizer().manifest):
                return
        except MethodError:
            continue
    register("gatys", _PixelStats)


def real_presets() -> list[Preset]:
    stylizer = Stylizer()
    methods = set(available_methods(stylizer.manifest))
    return [p for p in stylizer.manifest.enabled_presets() if p.method in methods]


def ensure_presets(settings: Settings, count: int = 2) -> None:
    """Make sure the bot will list presets: the shipped ones if any can run, else stand-in ones in DATA_DIR."""
    if real_presets():
        return
    register("tint", _Tint)
    folder = settings.presets_dir
    presets = []
    for i in range(count):
        matrix = torch.roll(torch.eye(3), shifts=i + 1, dims=1) * 0.8 + 0.1
        file = folder / f"tint_{i}.safetensors"
        sha = save_tensors({"matrix": matrix}, file)
        thumb = folder / f"tint_{i}.jpg"
        thumb.write_bytes(picture(64, 64, seed=20 + i))
        presets.append(Preset(name=f"tint_{i}", method="tint", file=file, sha256=sha, display_name=f"Tint {i}",
                              thumbnail=thumb))
    write_preset_manifest(folder / "manifest.toml", presets)


# -- talking to the fake server as one user ------------------------------------------------------------

async def _resolve(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value


def call_params(call: Any) -> dict[str, Any]:
    return call.params if hasattr(call, "params") else call[1]


def call_method(call: Any) -> str:
    return call.method if hasattr(call, "method") else call[0]


def text_of(call: Any) -> str:
    params = call_params(call)
    return str(params.get("text") or params.get("caption") or "")


def buttons_of(call: Any) -> dict[str, str]:
    """callback_data -> button text of a recorded call's inline keyboard."""
    markup = call_params(call).get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup) if markup else None
    rows = (markup or {}).get("inline_keyboard", []) if isinstance(markup, dict) else []
    return {b["callback_data"]: b["text"] for row in rows for b in row if "callback_data" in b}


class UserChat:
    """One user's private chat with the bot, on top of the fake server's injection and wait helpers."""

    def __init__(self, tg: Any, user_id: int) -> None:
        self.tg, self.user_id = tg, user_id

    def _mine(self, call: Any) -> bool:
        return str(call_params(call).get("chat_id")) == str(self.user_id)

    async def wait(self, method: str | list[str], predicate: Callable[[Any], bool] | None = None,
                   timeout: float = 60) -> Any:
        """The next call of ``method`` to this chat matching ``predicate``."""
        return await self.tg.wait_for(
            method, lambda c: self._mine(c) and (predicate is None or predicate(c)), timeout=timeout)

    async def wait_result(self, predicate: Callable[[Any], bool] | None = None, timeout: float = 60) -> Any:
        """The next result photo (Gatys preview photos skipped)."""
        return await self.wait("sendPhoto", lambda c: "Preview" not in text_of(c)
                               and (predicate is None or predicate(c)), timeout=timeout)

    async def wait_text(self, needle: str, method: str = "sendMessage", timeout: float = 60) -> Any:
        return await self.wait(method, lambda c: needle in text_of(c), timeout=timeout)

    async def wait_button(self, prefix: str, method: str = "sendMessage", timeout: float = 60) -> tuple[Any, str]:
        """The next message with a button whose callback data starts with ``prefix``; returns (call, data)."""
        call = await self.wait(method, lambda c: any(d.startswith(prefix) for d in buttons_of(c)), timeout=timeout)
        return call, next(d for d in buttons_of(call) if d.startswith(prefix))

    async def pick_preset(self) -> Any:
        """Wait for the next style menu and press its first preset; returns the menu's call."""
        menu, preset = await self.wait_button("ps:")
        await self.press(preset)
        return menu

    async def text(self, text: str) -> Any:
        return await _resolve(self.tg.user_sends_text(self.user_id, text))

    async def photo(self, data: bytes) -> Any:
        return await _resolve(self.tg.user_sends_photo(self.user_id, data))

    async def document(self, data: bytes, file_name: str, mime_type: str, **kwargs: Any) -> Any:
        return await _resolve(self.tg.user_sends_document(self.user_id, data, file_name, mime_type, **kwargs))

    async def forge_press(self, data: str) -> Any:
        """A callback with any ``data`` from this user (a modified client, someone else's buttons, forged ids)."""
        return await _resolve(self.tg.user_forges_press(self.user_id, data))

    async def inline(self, query: str) -> Any:
        return await _resolve(self.tg.user_inline_query(self.user_id, query))

    async def press(self, data: str) -> Any:
        """Press the button carrying ``data`` on the newest bot message that has it (as a user would)."""
        for message in reversed(self.tg.messages(self.user_id)):
            if any(b.get("callback_data") == data for b in self.tg.buttons(message)):
                return await _resolve(self.tg.user_presses(self.user_id, message["message_id"], data))
        raise LookupError(f"no message in chat {self.user_id} has a button {data!r}")
