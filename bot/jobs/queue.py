"""The persistent job queue and its worker pool.

A request becomes a ``jobs`` row (status ``queued``) and is committed *before* the user hears
"queued", so a crash or restart never loses it: :meth:`JobRunner.start` re-queues everything still
queued or running. Workers are asyncio tasks that hand the heavy stylization to a thread
(``asyncio.to_thread``) so the event loop keeps answering other users; CPU deployments run
``WORKERS`` of them, a CUDA device gets exactly one (two jobs would only fight over its memory).

Each job owns one status message that is edited (throttled to ``PROGRESS_INTERVAL``) from
"position N in the queue" through progress percentages to "done", with a Cancel button wired to the
facade's ``threading.Event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from telegram import Bot, InputMediaPhoto, Message
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError

from stylizer.errors import Cancelled, StylizerError
from stylizer.facade import StyleRef, StylizeRequest
from stylizer.methods import Progress

from . import store
from .keyboards import cancel_keyboard, result_keyboard
from .models import Job, JobStatus, MediaKind, StoredImage, utcnow
from .services import Services
from .tg import safe_edit, safe_send, with_retry

log = logging.getLogger(__name__)

#: Telegram's sendPhoto limit; results are JPEG-encoded below it (the PNG is offered as a file).
PHOTO_LIMIT = 10 * 1024 * 1024
#: Telegram's largest round video note.
VIDEO_NOTE_SIDE = 640


class Refused(Exception):
    """A request the bot declines (limits); the message is shown to the user as is."""


@dataclass
class JobSpec:
    user_id: int
    chat_id: int
    content_image_id: int
    method: str
    params: dict
    style_image_id: int | None = None
    preset: str | None = None
    parent_id: int | None = None


@dataclass
class _Work:
    """Plain values a worker thread needs (no ORM objects cross the thread boundary)."""

    job_id: int
    user_id: int
    content: Path
    style: Path | None
    preset: str | None
    method: str
    params: dict
    kind: str = MediaKind.PHOTO
    side: int = 0  # long side of the input


class _Live:
    """What a running job shows; the worker thread writes ``progress``, the ticker reads it."""

    def __init__(self, noun: str = "picture") -> None:
        self.noun = noun
        self.progress: Progress | None = None
        self.preview: Image.Image | None = None
        self.preview_version = 0

    def update(self, progress: Progress) -> None:
        self.progress = progress
        if progress.preview is not None:
            self.preview = progress.preview
            self.preview_version += 1

    def text(self) -> str:
        p = self.progress
        if p is None or not p.total:
            return f"🎨 Working on your {self.noun}…"
        pct = round(100 * p.fraction)
        bar = "▓" * (pct // 10) + "░" * (10 - pct // 10)
        return f"🎨 Working on your {self.noun}… {pct}%\n{bar}"


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def queued_text(position: int) -> str:
    return f"⏳ Queued — position {position}. I'll update this message as it goes."


def style_title(job: Job, services: Services) -> str:
    if job.preset:
        try:
            return services.stylizer.manifest.preset(job.preset).title
        except StylizerError:
            return job.preset
    return "your style"


class JobRunner:
    def __init__(self, services: Services, bot: Bot) -> None:
        self.services = services
        self.settings = services.settings
        self.bot = bot
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._cancels: dict[int, threading.Event] = {}
        self._shown: dict[int, str] = {}
        self._tasks: list[asyncio.Task] = []
        self._user_cancelled: set[int] = set()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    @property
    def worker_count(self) -> int:
        return 1 if self.services.device.startswith("cuda") else self.settings.workers

    @property
    def running(self) -> int:
        return len(self._cancels)

    async def start(self) -> None:
        """Re-queue what a previous run left unfinished, then start the workers."""
        async with self.services.sessions() as session:
            leftovers = await store.active_jobs(session)
            for job in leftovers:
                job.status = JobStatus.QUEUED
            await session.commit()
        for job in leftovers:
            self.queue.put_nowait(job.id)
        if leftovers:
            log.info("re-queued %d unfinished job(s) from the previous run", len(leftovers))
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(i), name=f"stylize-worker-{i}")
                       for i in range(self.worker_count)]
        log.info("%d worker(s) on %s", len(self._tasks), self.services.device)

    async def stop(self, grace: float = 15.0) -> None:
        """Stop workers; running jobs stay ``running`` in the database and are redone after a restart.

        Stylizations are interrupted at their next progress report, but a result already being sent is
        allowed to finish (up to ``grace`` seconds), so a clean shutdown does not deliver it twice.
        """
        self._stopping = True
        for event in self._cancels.values():
            event.set()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("workers still busy after %.0f s; stopping them anyway", grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- accepting work ------------------------------------------------------------------------------

    async def accept(self, spec: JobSpec) -> Job:
        """Check the limits, persist the job, then tell the user and queue it; raises :class:`Refused`.

        Called from update handlers, which never run concurrently for one user (``PerUserUpdateProcessor``),
        so the limit checks and the insert cannot race.
        """
        async with self.services.sessions() as session:
            in_flight = len(await store.active_jobs(session, spec.user_id))
            if in_flight >= self.settings.max_jobs_per_user:
                raise Refused(f"You already have {in_flight} picture(s) in progress. Please wait for them "
                              "to finish, or /cancel.")
            if await store.count_recent_jobs(session, spec.user_id) >= self.settings.rate_per_minute:
                raise Refused("That's a lot of pictures in one minute 🙂 Please wait a little and try again.")
            if len(await store.queued_ids(session)) >= self.settings.max_queue:
                raise Refused("I'm very busy right now. Please try again in a few minutes.")
            job = Job(user_id=spec.user_id, chat_id=spec.chat_id, content_image_id=spec.content_image_id,
                      style_image_id=spec.style_image_id, preset=spec.preset, method=spec.method,
                      params=spec.params, parent_id=spec.parent_id, status=JobStatus.QUEUED,
                      queued_at=utcnow(), attempts=0)
            session.add(job)
            await session.commit()  # persisted before the user is told anything
            position = await store.queue_position(session, job.id)
        text = queued_text(position)
        message_id = await safe_send(self.bot, spec.chat_id, text, cancel_keyboard(job.id))
        if message_id is not None:
            self._shown[job.id] = text
            async with self.services.sessions() as session:
                row = await session.get(Job, job.id)
                if row is not None:
                    row.status_message_id = message_id
                    await session.commit()
            job.status_message_id = message_id
        await self.queue.put(job.id)
        return job

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; True if it was still active."""
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None or job.status not in JobStatus.ACTIVE:
                return False
            event = self._cancels.get(job_id)
            if event is not None:  # running: the worker thread stops at its next progress report
                self._user_cancelled.add(job_id)
                event.set()
                return True
            job.status, job.finished_at, job.error = JobStatus.CANCELLED, utcnow(), "cancelled by user"
            await session.commit()
            chat_id, message_id = job.chat_id, job.status_message_id
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, "✖ Cancelled.")
        self._shown.pop(job_id, None)
        await self._refresh_positions()
        return True

    # -- the workers -----------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        while not self._stopping:
            job_id = await self.queue.get()
            if self._stopping:  # leave it queued in the database for the next start
                self.queue.task_done()
                break
            self._busy += 1
            self._idle.clear()
            try:
                await self._process(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %d: job %d crashed", index, job_id)
                await self._finish(job_id, JobStatus.FAILED, "internal error",
                                   "😕 Sorry, something went wrong on my side. Please try again.")
            finally:
                self.queue.task_done()
                self._busy -= 1
                if not self._busy:
                    self._idle.set()

    async def _process(self, job_id: int) -> None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None or job.status != JobStatus.QUEUED:
                return  # cancelled or deleted while waiting
            content = await session.get(StoredImage, job.content_image_id)
            style = await session.get(StoredImage, job.style_image_id) if job.style_image_id else None
            if content is None:
                job.status, job.error = JobStatus.FAILED, "input image is gone"
                await session.commit()
                return
            job.status, job.started_at, job.attempts = JobStatus.RUNNING, utcnow(), job.attempts + 1
            await session.commit()
            style_path = Path(style.path) if style else (Path(job.params["style_file"])
                                                         if job.params.get("style_file") else None)
            work = _Work(job.id, job.user_id, Path(content.path), style_path, job.preset, job.method,
                         dict(job.params), content.kind, max(content.width, content.height))
            chat_id, message_id = job.chat_id, job.status_message_id
        cancel = threading.Event()
        self._cancels[job_id] = cancel
        self._shown.pop(job_id, None)
        if message_id is None:
            message_id = await safe_send(self.bot, chat_id, "🎨 Working on your picture…", cancel_keyboard(job_id))
            await self._set_message(job_id, message_id)
        await self._refresh_positions()
        live = _Live(MediaKind.NOUNS.get(work.kind, "picture"))
        action = ChatAction.UPLOAD_VIDEO if work.kind in MediaKind.CLIPS else ChatAction.UPLOAD_PHOTO
        ticker = asyncio.create_task(self._tick(job_id, chat_id, message_id, live, action))
        started = time.perf_counter()
        try:
            png_path, jpeg, result = await asyncio.to_thread(self._render, work, live.update, cancel)
        except Cancelled:
            if job_id not in self._user_cancelled:
                return  # shutting down: stays "running", re-queued at the next start
            await self._finish(job_id, JobStatus.CANCELLED, "cancelled by user", "✖ Cancelled.")
            return
        except StylizerError as exc:
            log.info("job %d failed: %s", job_id, exc)
            await self._finish(job_id, JobStatus.FAILED, str(exc), f"😕 Sorry, I couldn't stylize this picture: {exc}")
            return
        finally:
            ticker.cancel()
            self._cancels.pop(job_id, None)
            self._user_cancelled.discard(job_id)
        elapsed = time.perf_counter() - started
        if work.kind in MediaKind.CLIPS:
            await self._deliver_clip(job_id, chat_id, message_id, work.kind, png_path, result, elapsed)
            return
        await self._deliver(job_id, chat_id, message_id, png_path, jpeg, result, elapsed)

    def _request(self, work: _Work, progress, cancel: threading.Event, size: int) -> StylizeRequest:
        styles = [StyleRef(image=work.style)] if work.style else [StyleRef(preset=work.preset)]
        params = work.params
        return StylizeRequest(
            content=work.content, styles=styles, method=work.method,
            strength=float(params.get("strength", 1.0)),
            preserve_color="luminance" if params.get("preserve_color") else False,
            size=size, steps=params.get("steps"), seed=params.get("seed"),
            device=self.settings.stylizer_device, progress=progress, cancel=cancel,
            options={"preview": True} if self.settings.preview_interval > 0 else {},
        )

    def _render(self, work: _Work, progress, cancel: threading.Event):
        """Runs in a worker thread: stylize, save the PNG, encode the photo (clips: the mp4)."""
        if work.kind in MediaKind.CLIPS:
            return self._render_clip(work, progress, cancel)
        size = int(work.params.get("size", self.settings.output_size))
        result = self.services.stylizer.stylize(self._request(work, progress, cancel, size))
        png_path = self.settings.results_dir / str(work.user_id) / f"{work.job_id}.png"
        png_path.parent.mkdir(parents=True, exist_ok=True)
        result.image.save(png_path, "PNG")
        jpeg = b""
        for quality in (92, 85, 75, 60):
            jpeg = _jpeg(result.image, quality)
            if len(jpeg) <= PHOTO_LIMIT:
                break
        return png_path, jpeg, result

    def _render_clip(self, work: _Work, progress, cancel: threading.Event):
        """A clip at most VIDEO_SIZE on its long side (video notes: at most 640, Telegram's limit)."""
        size = min(int(work.params.get("size") or self.settings.video_size), self.settings.video_size,
                   work.side or self.settings.video_size)
        if work.kind == MediaKind.VIDEO_NOTE:
            size = min(size, VIDEO_NOTE_SIDE)
        path = self.settings.results_dir / str(work.user_id) / f"{work.job_id}.mp4"
        result = self.services.stylizer.stylize_video(self._request(work, progress, cancel, size), path)
        limit = self.settings.max_video_output_mb
        if path.stat().st_size > limit * 2**20:
            mb = path.stat().st_size / 2**20
            path.unlink(missing_ok=True)
            raise StylizerError(f"the result would be {mb:.0f} MB, more than the {limit:g} MB Telegram allows; "
                                "please send a shorter clip")
        return path, b"", result

    async def _deliver_clip(self, job_id: int, chat_id: int, message_id: int | None, kind: str, path: Path,
                            result, elapsed: float) -> None:
        """Send the clip back as the kind it came as: video, animation or round video note."""
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:  # the user deleted their data meanwhile
                path.unlink(missing_ok=True)
                return
            job.timings = {k: round(v, 3) for k, v in result.timings.items()}
            job.device, job.result_path = result.device, str(path)
            info = result.info
            caption = (f"{style_title(job, self.services)} · strength "
                       f"{round(100 * float(job.params.get('strength', 1.0)))}%")
            markup = result_keyboard(job, hq_available=False, still=False)
            data = await asyncio.to_thread(path.read_bytes)
            duration = max(1, round(info.duration))
            try:
                if kind == MediaKind.VIDEO_NOTE:
                    sent = await with_retry(lambda: self.bot.send_video_note(
                        chat_id, video_note=data, duration=duration, length=info.width, reply_markup=markup))
                    media = sent.video_note
                elif kind == MediaKind.ANIMATION:
                    sent = await with_retry(lambda: self.bot.send_animation(
                        chat_id, animation=data, duration=duration, width=info.width, height=info.height,
                        caption=caption, reply_markup=markup, filename=f"stylized_{job_id}.mp4"))
                    media = sent.animation or sent.document
                else:
                    sent = await with_retry(lambda: self.bot.send_video(
                        chat_id, video=data, duration=duration, width=info.width, height=info.height,
                        caption=caption, reply_markup=markup, supports_streaming=True,
                        filename=f"stylized_{job_id}.mp4"))
                    media = sent.video or sent.document
            except TelegramError as exc:
                log.warning("job %d: clip not delivered: %s", job_id, exc)
                job.status, job.error, job.finished_at = JobStatus.FAILED, f"delivery failed: {exc}", utcnow()
                await session.commit()
                return
            job.result_file_id = media.file_id if media is not None else None
            job.status, job.finished_at = JobStatus.DONE, utcnow()
            await session.commit()
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, f"✅ Done in {elapsed:.1f} s.")

    async def _deliver(self, job_id, chat_id, message_id, png_path, jpeg, result, elapsed) -> None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:  # the user deleted their data meanwhile
                png_path.unlink(missing_ok=True)
                return
            job.timings = {k: round(v, 3) for k, v in result.timings.items()}
            job.device, job.result_path = result.device, str(png_path)
            width, height = result.size
            caption = (f"{style_title(job, self.services)} · {result.method} · "
                       f"strength {round(100 * float(job.params.get('strength', 1.0)))}% · {width}×{height}")
            markup = result_keyboard(job, self._hq_possible(job))
            try:
                if job.params.get("as_document"):  # a full-resolution request: the PNG itself
                    sent = await self._send_png(chat_id, png_path, job.id, caption, None)
                else:
                    try:
                        sent = await with_retry(lambda: self.bot.send_photo(chat_id, photo=jpeg, caption=caption,
                                                                            reply_markup=markup))
                    except BadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a file always goes through
                        log.info("job %d: photo refused (%s), sending a file", job_id, exc)
                        sent = await self._send_png(chat_id, png_path, job.id, caption, markup)
            except TelegramError as exc:
                log.warning("job %d: result not delivered: %s", job_id, exc)
                job.status, job.error, job.finished_at = JobStatus.FAILED, f"delivery failed: {exc}", utcnow()
                await session.commit()
                return
            if sent.photo:
                job.result_file_id = sent.photo[-1].file_id
            elif sent.document:
                job.result_file_id = sent.document.file_id
            job.status, job.finished_at = JobStatus.DONE, utcnow()
            await session.commit()
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, f"✅ Done in {elapsed:.1f} s.")

    async def _send_png(self, chat_id: int, path: Path, job_id: int, caption: str, markup) -> Message:
        data = await asyncio.to_thread(path.read_bytes)
        name = f"stylized_{job_id}.png"
        return await with_retry(lambda: self.bot.send_document(chat_id, document=data, filename=name,
                                                               caption=caption, reply_markup=markup))

    def _hq_possible(self, job: Job) -> bool:
        if not self.services.hq_method or job.method == self.services.hq_method:
            return False
        return bool(job.style_image_id) or self.services.preset_style_image(job.preset) is not None

    async def _finish(self, job_id: int, status: str, error: str, text: str) -> None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return
            job.status, job.error, job.finished_at = status, error[:2000], utcnow()
            await session.commit()
            chat_id, message_id = job.chat_id, job.status_message_id
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, text)
        else:
            await safe_send(self.bot, chat_id, text)

    async def _set_message(self, job_id: int, message_id: int | None) -> None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is not None:
                job.status_message_id = message_id
                await session.commit()

    async def _tick(self, job_id: int, chat_id: int, message_id: int | None, live: _Live,
                    action: str = ChatAction.UPLOAD_PHOTO) -> None:
        """While a job runs: keep the chat action alive and mirror progress into the status message.

        Methods that send previews (Gatys) get one extra photo message, updated in place at most every
        ``PREVIEW_INTERVAL`` seconds and deleted when the job ends.
        """
        last_action = last_preview = 0.0
        shown_preview, preview_id = 0, None
        try:
            while True:
                now = time.monotonic()
                if now - last_action >= 4.5:  # a chat action lasts 5 s
                    last_action = now
                    try:
                        await self.bot.send_chat_action(chat_id, action)
                    except TelegramError as exc:
                        log.debug("chat action failed: %s", exc)
                text = live.text()
                if (message_id and self._shown.get(job_id) != text
                        and await safe_edit(self.bot, chat_id, message_id, text, cancel_keyboard(job_id))):
                    self._shown[job_id] = text
                if (live.preview is not None and live.preview_version != shown_preview
                        and now - last_preview >= self.settings.preview_interval > 0):
                    shown_preview, last_preview = live.preview_version, now
                    preview_id = await self._show_preview(chat_id, preview_id, live.preview) or preview_id
                await asyncio.sleep(self.settings.progress_interval)
        except asyncio.CancelledError:
            self._shown.pop(job_id, None)
            if preview_id is not None:
                with contextlib.suppress(TelegramError):
                    await self.bot.delete_message(chat_id, preview_id)
            raise

    async def _show_preview(self, chat_id: int, message_id: int | None, image: Image.Image) -> int | None:
        """Send the preview photo, or swap the picture of the one already sent; failures only cost the preview."""
        data = await asyncio.to_thread(_jpeg, image, 80)
        try:
            if message_id is None:
                sent = await self.bot.send_photo(chat_id, photo=data, caption="👀 Preview",
                                                 disable_notification=True)
                return sent.message_id
            await self.bot.edit_message_media(InputMediaPhoto(data, caption="👀 Preview"), chat_id=chat_id,
                                              message_id=message_id)
        except TelegramError as exc:
            log.debug("preview not shown: %s", exc)
        return message_id

    async def _refresh_positions(self, limit: int = 30) -> None:
        """Waiting jobs moved up: update their "position N" messages (unchanged ones are skipped)."""
        async with self.services.sessions() as session:
            ids = (await store.queued_ids(session))[:limit]
            jobs = [await session.get(Job, i) for i in ids]
        for position, job in enumerate(jobs, start=1):
            if job is None or not job.status_message_id:
                continue
            text = queued_text(position)
            if self._shown.get(job.id) != text and await safe_edit(
                    self.bot, job.chat_id, job.status_message_id, text, cancel_keyboard(job.id)):
                self._shown[job.id] = text
