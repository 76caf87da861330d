"""Admin preset training in the background: train, render a sample, then publish or discard.

Training is long (minutes on a GPU, much more on a CPU), so at most one runs at a time, in a thread,
with its own status message. The trained preset stays a *draft* (weights under DATA_DIR/presets,
described in ``training_runs.draft``) until an admin presses Publish: only then is it written to
DATA_DIR/presets/manifest.toml and the bot's preset list reloaded.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from stylizer.errors import Cancelled, StylizerError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.image import list_images
from stylizer.manifest import Manifest, Preset, write_preset_manifest
from stylizer.train.preset import train_preset

from . import store
from .i18n import N_, translator
from .keyboards import training_keyboard
from .models import TrainingRun, utcnow
from .progress import Live
from .services import Services
from .tg import safe_edit, safe_send

log = logging.getLogger(__name__)


def preset_to_dict(preset: Preset) -> dict[str, Any]:
    data = asdict(preset)
    data["file"] = str(preset.file)
    data["thumbnail"] = str(preset.thumbnail) if preset.thumbnail else None
    data["params"] = dict(preset.params)
    return data


def preset_from_dict(data: dict[str, Any]) -> Preset:
    fields = dict(data)
    fields["file"] = Path(fields["file"])
    fields["thumbnail"] = Path(fields["thumbnail"]) if fields.get("thumbnail") else None
    return Preset(**fields)


class Trainer:
    def __init__(self, services: Services, bot: Bot) -> None:
        self.services = services
        self.settings = services.settings
        self.bot = bot
        self._one_at_a_time = asyncio.Lock()
        self._cancels: dict[int, threading.Event] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Training is not resumable: runs cut short by a restart are marked failed and their admin told."""
        async with self.services.sessions() as session:
            runs = await store.interrupted_training(session)
            for run in runs:
                run.status, run.error, run.finished_at = "failed", "interrupted by a restart", utcnow()
            await session.commit()
        for run in runs:
            _ = translator(run.params.get("locale"))
            text = _("⚠ Training of “{name}” was interrupted by a restart. Send /train again to retry.",
                     name=run.name)
            if run.status_message_id:
                await safe_edit(self.bot, run.chat_id, run.status_message_id, text)
            else:
                await safe_send(self.bot, run.chat_id, text)

    async def stop(self) -> None:
        for event in self._cancels.values():
            event.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, run_id: int) -> None:
        task = asyncio.create_task(self._run(run_id), name=f"train-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, run_id: int) -> bool:
        event = self._cancels.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def sample_image(self, style_path: Path) -> Path:
        if self.settings.sample_image and self.settings.sample_image.is_file():
            return self.settings.sample_image
        if self.settings.train_content_dir and self.settings.train_content_dir.is_dir():
            images = list_images(self.settings.train_content_dir)
            if images:
                return images[0]
        return style_path

    async def _run(self, run_id: int) -> None:
        cancel = threading.Event()
        self._cancels[run_id] = cancel
        try:
            async with self._one_at_a_time:
                await self._train_and_sample(run_id, cancel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("training run %d crashed", run_id)
            await self.services.alerts.send(self.bot, f"⚠ Training run {run_id} crashed: {exc!r}")
            await self._set(run_id, "failed", "internal error",
                            N_("😕 Training failed with an internal error (see logs)."))
        finally:
            self._cancels.pop(run_id, None)

    async def _train_and_sample(self, run_id: int, cancel: threading.Event) -> None:
        async with self.services.sessions() as session:
            run = await session.get(TrainingRun, run_id)
            if run is None or run.status != "queued":
                return
            run.status = "running"
            await session.commit()
        _ = translator(run.params.get("locale"))
        if cancel.is_set():
            await self._set(run_id, "cancelled", "cancelled", _("✖ Training cancelled."))
            return
        live = Live()
        ticker = asyncio.create_task(self._tick(run, live))
        stylizer = self.services.stylizer
        try:
            draft = await asyncio.to_thread(
                train_preset, run.name, Path(run.style_path), manifest=stylizer.manifest, method=run.method,
                content_dir=self.settings.train_content_dir, out_dir=self.settings.presets_dir,
                steps=self.settings.train_steps, size=self.settings.train_size,
                device=self.settings.stylizer_device, progress=live.update, cancel=cancel,
                display_name=run.params.get("display_name", ""),
            )
            sample_path = self.sample_image(Path(run.style_path))
            jpeg = await asyncio.to_thread(self._render_sample, stylizer, draft, sample_path, cancel)
        except Cancelled:
            await self._set(run_id, "cancelled", "cancelled", _("✖ Training of “{name}” cancelled.", name=run.name))
            return
        except StylizerError as exc:
            await self._set(run_id, "failed", str(exc),
                            _("😕 Training of “{name}” failed: {reason}", name=run.name, reason=exc))
            return
        finally:
            ticker.cancel()
        async with self.services.sessions() as session:
            row = await session.get(TrainingRun, run_id)
            if row is None:
                return
            row.status, row.draft, row.finished_at = "done", preset_to_dict(draft), utcnow()
            await session.commit()
        if run.status_message_id:
            await safe_edit(self.bot, run.chat_id, run.status_message_id,
                            _("✅ Training of “{name}” finished.", name=run.name))
        caption = _("Sample of the new style “{title}” ({method}). Publish it for everyone?",
                    title=draft.title, method=draft.method)
        try:
            await self.bot.send_photo(run.chat_id, photo=jpeg, caption=caption,
                                      reply_markup=training_keyboard(_, run_id, done=True))
        except TelegramError as exc:
            log.warning("training sample not delivered: %s", exc)

    def _render_sample(self, stylizer: Stylizer, draft: Preset, sample: Path, cancel: threading.Event) -> bytes:
        preview = Stylizer(stylizer.manifest.with_presets(draft))
        result = preview.stylize(StylizeRequest(
            content=sample, styles=[StyleRef(preset=draft.name)], method=draft.method,
            size=self.settings.output_size, device=self.settings.stylizer_device, cancel=cancel,
        ))
        buf = io.BytesIO()
        result.image.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    async def _tick(self, run: TrainingRun, live: Live) -> None:
        _ = translator(run.params.get("locale"))
        last = ""
        while True:
            p = live.progress
            text = _("🧑‍🎨 Training “{name}” ({method})…", name=run.name, method=run.method)
            if p is not None and p.total:
                text += f" {round(100 * p.fraction)}% ({p.step}/{p.total})"
            if run.status_message_id and text != last:
                await safe_edit(self.bot, run.chat_id, run.status_message_id, text,
                                training_keyboard(_, run.id, False))
                last = text
            await asyncio.sleep(self.settings.progress_interval)

    async def _set(self, run_id: int, status: str, error: str | None, text: str) -> None:
        async with self.services.sessions() as session:
            run = await session.get(TrainingRun, run_id)
            if run is None:
                return
            run.status, run.error, run.finished_at = status, error, utcnow()
            await session.commit()
            chat_id, message_id = run.chat_id, run.status_message_id
            text = translator(run.params.get("locale"))(text)  # an N_ msgid, or already translated
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, text)
        else:
            await safe_send(self.bot, chat_id, text)

    # -- publishing ----------------------------------------------------------------------------------

    def _trained(self) -> dict[str, Preset]:
        path = self.services.trained_manifest
        return dict(Manifest([path]).presets) if path.is_file() else {}

    async def publish(self, run_id: int) -> str:
        """Add the draft to DATA_DIR/presets/manifest.toml and reload; returns a message for the admin."""
        async with self.services.sessions() as session:
            run = await session.get(TrainingRun, run_id)
            if run is None or run.status != "done" or not run.draft:
                return translator(run.params.get("locale") if run else None)(
                    "This draft can't be published (already published, discarded or failed).")
            draft = preset_from_dict(run.draft)
            presets = self._trained()
            presets[draft.name] = draft
            await asyncio.to_thread(write_preset_manifest, self.services.trained_manifest, presets.values())
            run.status = "published"
            await session.commit()
        await self.services.reload_presets()
        return translator(run.params.get("locale"))("✅ “{title}” is live for everyone.", title=draft.title)

    async def discard(self, run_id: int) -> str:
        async with self.services.sessions() as session:
            run = await session.get(TrainingRun, run_id)
            if run is None or run.status != "done" or not run.draft:
                return translator(run.params.get("locale") if run else None)("Nothing to discard.")
            draft = preset_from_dict(run.draft)
            run.status = "discarded"
            await session.commit()
        if draft.name not in self._trained():
            self._remove_files(draft)
        return translator(run.params.get("locale"))("🗑 Discarded the draft “{title}”.", title=draft.title)

    async def delete_preset(self, name: str) -> bool:
        """Remove an admin-trained preset (manifest entry and files); shipped presets can only be disabled."""
        presets = self._trained()
        preset = presets.pop(name, None)
        if preset is None:
            return False
        await asyncio.to_thread(write_preset_manifest, self.services.trained_manifest, presets.values())
        self._remove_files(preset)
        await self.services.reload_presets()
        return True

    def _remove_files(self, preset: Preset) -> None:
        root = self.settings.presets_dir.resolve()
        for path in (preset.file, preset.thumbnail):
            if path is not None and root in path.resolve().parents:
                path.unlink(missing_ok=True)
