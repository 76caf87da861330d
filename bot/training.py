"""Admin preset training in the background: claim a queued run, train, render a sample, offer Publish/Discard.

A run is a ``training_runs`` row that ``/train`` queued on whichever replica took it, with the admin's picture in
a blob. The process that renders (the all-in-one bot, or ``python -m bot worker``) claims it atomically, trains it
in a thread (one at a time per process), beats ``heartbeat_at`` and looks for ``cancel_requested`` while it runs,
and stores the draft's files as blobs (:mod:`bot.trained`). What the admin sees goes through the
:class:`TrainingChat` the front end gives (Telegram's: :class:`bot.telegram.training.ChatTrainingReports`), so this
module knows no front end. Publish, on any replica, makes it a preset that
every worker and replica installs. A run whose trainer died (no beat for ``2 x HEARTBEAT_TIMEOUT``) is failed
and its admin told; queued runs simply wait for the next trainer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from pathlib import Path
from typing import Protocol

from stylizer.errors import Cancelled, StylizerError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.image import list_images
from stylizer.manifest import Preset
from stylizer.train.preset import train_preset

from . import blobs, trained
from .i18n import N_, translator
from .models import TrainingRun, utcnow
from .progress import Live
from .services import Services

log = logging.getLogger(__name__)
#: seconds between looks for queued runs when nothing woke the trainer
POLL_SECONDS = 2.0


class TrainingChat(Protocol):
    """Where an admin follows a run (texts already in their language)."""

    async def status(self, run: TrainingRun, text: str, running: bool) -> None:
        """The run's status message (``running``: with a way to cancel it)."""

    async def sample(self, run: TrainingRun, picture: bytes, caption: str) -> None:
        """The trained draft's sample, with Publish / Discard."""

    async def alert(self, text: str) -> None:
        """Something broke: tell the admins."""


class Trainer:
    def __init__(self, services: Services, chat: TrainingChat) -> None:
        self.services = services
        self.settings = services.settings
        self.chat = chat
        self._wake = asyncio.Event()
        self._cancel = threading.Event()  # the run in progress (one at a time)
        self._current: int | None = None  # its id
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="trainer")

    async def stop(self) -> None:
        """Stop at once; a run in progress goes back to the queue for the next trainer (this worker's replacement,
        or another one), not to the admin as failed."""
        self._cancel.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._current is not None:
            async with self.services.sessions() as session:
                await trained.requeue(session, self._current)
            log.info("training run %d handed back to the queue", self._current)

    def wake(self) -> None:
        """A run was just queued in this process: look now, not at the next poll."""
        self._wake.set()

    @property
    def stale_seconds(self) -> float:
        return 2 * self.settings.heartbeat_timeout

    async def _serve(self) -> None:
        while True:
            try:
                await self._fail_stale()
                async with self.services.sessions() as session:
                    run = await trained.claim_run(session)
                if run is not None:
                    await self._run(run)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again at the next poll
                log.exception("trainer loop")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _fail_stale(self) -> None:
        async with self.services.sessions() as session:
            runs = await trained.stale_runs(session, self.stale_seconds)
            for run in runs:
                await blobs.remove(session, [run.style_blob_id])
            await session.commit()
        for run in runs:
            _ = translator(run.params.get("locale"))
            await self.chat.status(run, _("⚠ Training of “{name}” was interrupted by a restart. Send /train again to "
                                          "retry.", name=run.name), running=False)

    async def _run(self, run: TrainingRun) -> None:
        log.info("training run %d (%s, %s) claimed here", run.id, run.name, run.method)
        self._cancel.clear()
        self._current = run.id
        try:
            await self._train_and_sample(run)
        except asyncio.CancelledError:  # stop(): the run stays ``_current`` and goes back to the queue
            raise
        except Exception as exc:
            log.exception("training run %d crashed", run.id)
            await self.chat.alert(f"⚠ Training run {run.id} crashed: {exc!r}")
            await self._set(run.id, "failed", "internal error",
                            N_("😕 Training failed with an internal error (see logs)."))
        finally:
            trained.forget_draft_files(self.settings.presets_dir, run.id)
        self._current = None

    def sample_image(self, style_path: Path) -> Path:
        if self.settings.sample_image and self.settings.sample_image.is_file():
            return self.settings.sample_image
        if self.settings.train_content_dir and self.settings.train_content_dir.is_dir():
            images = list_images(self.settings.train_content_dir)
            if images:
                return images[0]
        return style_path

    async def _train_and_sample(self, run: TrainingRun) -> None:
        _ = translator(run.params.get("locale"))
        folder = trained.draft_folder(self.settings.presets_dir, run.id)
        async with self.services.sessions() as session:
            style = await blobs.get(session, run.style_blob_id) if run.style_blob_id else None
            data = style.data if style is not None else None
        if data is None:  # a run queued before pictures were blobs: its file on the replica that took it
            legacy = Path(run.style_path)
            data = legacy.read_bytes() if legacy.is_file() else None
        if data is None:
            await self._set(run.id, "failed", "style picture lost",
                            _("😕 Training of “{name}” failed: its picture is gone. Send /train again.", name=run.name))
            return
        content_dir = self.settings.train_content_dir
        if content_dir is None or not content_dir.is_dir():
            await self._set(run.id, "failed", "no training data",
                            _("TRAIN_CONTENT_DIR is not set to a folder of photos, so I can't train presets here."))
            return
        style_path = folder / f"style{Path(run.style_path).suffix or '.jpg'}"
        await asyncio.to_thread(blobs.write_file, style_path, data)
        live = Live()
        ticker = asyncio.create_task(self._tick(run, live))
        stylizer = self.services.stylizer
        try:
            draft = await asyncio.to_thread(
                train_preset, run.name, style_path, manifest=stylizer.manifest, method=run.method,
                content_dir=content_dir, out_dir=folder, steps=self.settings.train_steps,
                size=self.settings.train_size, device=self.settings.stylizer_device, progress=live.update,
                cancel=self._cancel, display_name=run.params.get("display_name", ""),
            )
            sample_path = self.sample_image(style_path)
            jpeg = await asyncio.to_thread(self._render_sample, stylizer, draft, sample_path)
        except Cancelled:
            await self._set(run.id, "cancelled", "cancelled", _("✖ Training of “{name}” cancelled.", name=run.name))
            return
        except StylizerError as exc:
            await self._set(run.id, "failed", str(exc),
                            _("😕 Training of “{name}” failed: {reason}", name=run.name, reason=exc))
            return
        finally:
            ticker.cancel()
        async with self.services.sessions() as session:
            row = await session.get(TrainingRun, run.id)
            if row is None:
                return
            row.draft = await trained.store_draft(session, draft)
            row.status, row.finished_at = "done", utcnow()
            await blobs.remove(session, [row.style_blob_id])
            row.style_blob_id = None
            await session.commit()
        await self.chat.status(run, _("✅ Training of “{name}” finished.", name=run.name), running=False)
        await self.chat.sample(run, jpeg, _("Sample of the new style “{title}” ({method}). Publish it for everyone?",
                                            title=draft.title, method=draft.method))

    def _render_sample(self, stylizer: Stylizer, draft: Preset, sample: Path) -> bytes:
        preview = Stylizer(stylizer.manifest.with_presets(draft))
        result = preview.stylize(StylizeRequest(
            content=sample, styles=[StyleRef(preset=draft.name)], method=draft.method,
            size=self.settings.output_size, device=self.settings.stylizer_device, cancel=self._cancel,
        ))
        buf = io.BytesIO()
        result.image.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    async def _tick(self, run: TrainingRun, live: Live) -> None:
        """Progress into the admin's status message; the heartbeat, and an admin's Cancel from any replica."""
        _ = translator(run.params.get("locale"))
        last, edited = "", 0.0
        loop = asyncio.get_running_loop()
        beat = min(self.settings.progress_interval, self.settings.heartbeat_timeout / 3)
        while True:
            async with self.services.sessions() as session:
                if await trained.beat(session, run.id):
                    self._cancel.set()
            p = live.progress
            text = _("🧑‍🎨 Training “{name}” ({method})…", name=run.name, method=run.method)
            if p is not None and p.total:
                text += f" {round(100 * p.fraction)}% ({p.step}/{p.total})"
            if text != last and loop.time() - edited >= self.settings.progress_interval:
                await self.chat.status(run, text, running=True)
                last, edited = text, loop.time()
            await asyncio.sleep(beat)

    async def _set(self, run_id: int, status: str, error: str | None, text: str) -> None:
        async with self.services.sessions() as session:
            run = await session.get(TrainingRun, run_id)
            if run is None:
                return
            run.status, run.error, run.finished_at = status, error, utcnow()
            await blobs.remove(session, [run.style_blob_id])
            run.style_blob_id = None
            await session.commit()
            text = translator(run.params.get("locale"))(text)  # an N_ msgid, or already translated
        await self.chat.status(run, text, running=False)
