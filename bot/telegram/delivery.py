"""What the user sees of a job: the status message (queue position, ETA, progress) and the result.

Results go back as what came in: a photo (the PNG as a file on request), an album as one media
group plus one message of buttons, a clip as a video / GIF animation / round video note, and the
"all styles" sheet as a photo with the style menu under it. Every message quotes the user's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from telegram import Bot, InputMediaPhoto, Message
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError

from .. import store
from ..i18n import Translator, translator
from ..jobs.origin import still_claimed
from ..jobs.render import Rendered, jpeg
from ..models import Job, JobKind, JobStatus, MediaKind, utcnow
from ..progress import Live, bar
from ..services import Services
from .keyboards import cancel_keyboard, presets_keyboard, result_keyboard
from .tg import quoting, safe_edit, safe_send

log = logging.getLogger(__name__)


def eta_text(_: Translator, seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return _(", about {seconds} s", seconds=max(5, 5 * math.ceil(seconds / 5)))
    return _(", about {minutes} min", minutes=math.ceil(seconds / 60))


def queued_text(_: Translator, position: int, eta: float | None = None) -> str:
    return _("⏳ In the queue — position {position}{eta}. I'll update this message as it goes.",
             position=position, eta=eta_text(_, eta))


def working_text(_: Translator, media: str, live: Live | None = None) -> str:
    noun = _(MediaKind.NOUNS.get(media, MediaKind.NOUNS[MediaKind.PHOTO]))
    percent = live.percent if live is not None else None
    if percent is None:
        return _("🎨 Working on your {noun}…", noun=noun)
    return _("🎨 Working on your {noun}… {percent}%", noun=noun, percent=percent) + "\n" + bar(percent)


def style_title(services: Services, job: Job, _: Translator) -> str:
    """What the job's style is called in user text: the preset's title (or "your style"), a mix with its shares."""
    title = services.preset_title(job.preset) if job.preset else _("your style")
    mix = job.params.get("mix") or {}
    if mix:
        other = services.preset_title(mix.get("preset")) or _("your style")
        share = round(100 * float(mix.get("share", 0)))
        title = f"{title} {100 - share}% + {other} {share}%"
    return title


class TelegramDelivery:
    """The Telegram bot's side of its jobs (:class:`~bot.jobs.origin.Origin`): one status message per job, edited
    from "position N in the queue" through progress to "done" (none at all for a job done within
    ``QUIET_SECONDS``), with a Cancel button; the result as a message of the input's kind, quoting it."""

    name = "telegram"

    def __init__(self, services: Services, bot: Bot) -> None:
        self.services, self.settings, self.bot = services, services.settings, bot
        self._shown: dict[int, str] = {}  # job id -> the status text on screen (edits that change nothing skipped)
        self._announcers: set[asyncio.Task] = set()
        self._refreshed_at = 0.0
        self._refreshing = False
        self.eta: Callable[[int, float | None], float | None] = lambda position, typical: None  # the runner's

    # -- the job's life (Origin) ---------------------------------------------------------------------

    async def fetch(self, image, dest: Path) -> bool:  # type: ignore[no-untyped-def]
        """Download the picture again by ``file_id`` (a worker on another machine, or files lost since)."""
        try:
            tg_file = await self.bot.get_file(image.file_id)
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(dest.name + ".part")
            await tg_file.download_to_drive(partial)
            partial.replace(dest)
        except Exception as exc:  # TelegramError, network or disk: the user is asked to send it again
            log.info("could not fetch image %d (%s): %s", image.id, image.file_id, exc)
            return False
        return True

    async def accepted(self, job: Job, position: int, eta: float | None) -> None:
        if not self.settings.quiet_seconds:
            await self._announce(job, queued_text(translator(job.locale), position, eta))
            return
        # a job done by then needs no "queued" message: its photo says it all
        task = asyncio.create_task(self._announce_later(job, position))
        self._announcers.add(task)
        task.add_done_callback(self._announcers.discard)

    async def _announce_later(self, job: Job, position: int) -> None:
        """After ``QUIET_SECONDS``, the "queued" status message of a job still waiting (with its Cancel button)."""
        await asyncio.sleep(self.settings.quiet_seconds)
        async with self.services.sessions() as session:
            row = await session.get(Job, job.id)
            if row is None or row.status != JobStatus.QUEUED or row.status_message_id:
                return
            position = await store.queue_position(session, job.id) or position
            typical = await store.typical_run_seconds(session)
        eta = self.eta(position, typical)
        await self._announce(job, queued_text(translator(job.locale), position, eta))

    async def _announce(self, job: Job, text: str) -> None:
        message_id = await safe_send(self.bot, job.chat_id, text, self.cancel_markup(job), job.reply_to)
        if message_id is not None:
            self._shown[job.id] = text
            await self._set_message(job.id, message_id)
            job.status_message_id = message_id

    async def _set_message(self, job_id: int, message_id: int | None) -> None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is not None:
                job.status_message_id = message_id
                await session.commit()

    async def running(self, job: Job, media: str, live: Live) -> None:
        message_id = job.status_message_id
        _ = translator(job.locale)

        async def show(text: str) -> bool:
            """Mirror ``text`` into the job's status message, sending one when it has none yet (the "queued" one
            may have been sent meanwhile, by this process or a web replica: the row says)."""
            nonlocal message_id
            if self._shown.get(job.id) == text:
                return True
            if message_id is None:
                async with self.services.sessions() as session:
                    row = await session.get(Job, job.id)
                    message_id = row.status_message_id if row is not None else None
            if message_id is None:
                message_id = await safe_send(self.bot, job.chat_id, text, self.cancel_markup(job), job.reply_to)
                await self._set_message(job.id, message_id)
                ok = message_id is not None
            else:
                ok = await safe_edit(self.bot, job.chat_id, message_id, text, self.cancel_markup(job))
            if ok:
                self._shown[job.id] = text
            return ok

        self._shown.pop(job.id, None)
        try:
            await self.tick(job.chat_id, media, live, _, show)
        finally:
            self._shown.pop(job.id, None)

    async def closed(self, job: Job, text: str) -> None:
        self._shown.pop(job.id, None)
        await self.notify(job, text)

    async def crashed(self, job_id: int, error: BaseException) -> None:
        await self.services.alerts.send(self.bot, f"⚠ Job {job_id} crashed: {error!r}")

    async def waiting_moved(self) -> None:
        """Waiting jobs moved up: refresh their "position N" messages, at most once every 4 progress intervals.

        Every start shifts every waiting job's position, and each shown position is one edit; refreshed at
        each start, a queue of 30 cost 30 edits a job, which under Telegram's 30 messages/s held the whole
        pipeline to a few jobs a second (bench/scale.py). Coalesced, a burst of starts costs one pass.
        """
        if self._refreshing:
            return
        self._refreshing = True
        try:
            wait = self._refreshed_at + 4 * self.settings.progress_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._refreshed_at = time.monotonic()
            await self._refresh_positions()
        finally:
            self._refreshing = False

    async def _refresh_positions(self, limit: int = 20) -> None:
        async with self.services.sessions() as session:
            ids = (await store.queued_ids(session))[:limit]
            jobs = [await session.get(Job, i) for i in ids]
            typical = await store.typical_run_seconds(session)
        for position, job in enumerate(jobs, start=1):
            if job is None or not job.status_message_id or job.origin != self.name:
                continue
            eta = self.eta(position, typical)
            text = queued_text(translator(job.locale), position, eta)
            if self._shown.get(job.id) != text and await safe_edit(
                    self.bot, job.chat_id, job.status_message_id, text, self.cancel_markup(job)):
                self._shown[job.id] = text

    # -- texts ---------------------------------------------------------------------------------------

    def style_title(self, job: Job, _: Translator) -> str:
        return style_title(self.services, job, _)

    def mode(self, job: Job, _: Translator) -> str:
        """Plain words for how it was made; users never see method names."""
        if self.services.is_slow(job.method):
            return _("High quality")
        return _("Any picture") if job.style_image_id else _("Quick")

    def caption(self, job: Job, _: Translator, size: tuple[int, int] | None = None) -> str:
        parts = [self.style_title(job, _), self.mode(job, _),
                 _("strength {percent}%", percent=round(100 * float(job.params.get("strength", 1.0))))]
        if size is not None:
            parts.append(f"{size[0]}×{size[1]}")
        return " · ".join(parts)

    def _keyboard(self, job: Job, _: Translator, full_res: int):
        hq = (self.services.hq_method is not None and not self.services.is_slow(job.method)
              and (bool(job.style_image_id) or self.services.preset_style_image(job.preset) is not None))
        mixable = job.kind != JobKind.SHEET and not self.services.is_slow(job.method) and not job.params.get("mix")
        return result_keyboard(_, job, hq=hq and full_res == 1, full_res=full_res,
                               brush=self.services.takes_pictures(job.method), mix=mixable,
                               share=full_res == 1 and not job.params.get("as_document"))

    # -- results -------------------------------------------------------------------------------------

    async def deliver(self, claimed: Job, media: str, rendered: Rendered, elapsed: float) -> None:
        """Send the result and record it, only while the row is still the job this worker claimed: same owner, same
        chat, still running on this attempt. A job whose user deleted their data meanwhile, one cancelled on
        another replica or handed to another worker, is dropped (its files too)."""
        job_id = claimed.id
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None or not still_claimed(job, claimed):
                log.info("job %d: not delivered, the row is no longer this claim", job_id)
                for path in rendered.paths:
                    path.unlink(missing_ok=True)
                return
            job.timings = {k: round(v, 3) for k, v in rendered.timings.items()}
            job.device = rendered.device or None
            job.result_path = str(rendered.paths[0])  # an album's others lie beside it: {job}_{n}.png
            _ = translator(job.locale)
            try:
                if job.kind == JobKind.SHEET:
                    job.result_file_id = await self._send_sheet(job, _, rendered)
                elif media in MediaKind.CLIPS:
                    job.result_file_id = await self._send_clip(job, _, media, rendered)
                elif job.kind == JobKind.ALBUM:
                    job.result_file_id = await self._send_album(job, _, rendered)
                else:
                    job.result_file_id = await self._send_photo(job, _, rendered)
            except TelegramError as exc:
                log.warning("job %d: result not delivered: %s", job_id, exc)
                job.status, job.error, job.finished_at = JobStatus.FAILED, f"delivery failed: {exc}", utcnow()
                await session.commit()
                return
            job.status, job.finished_at = JobStatus.DONE, utcnow()
            await session.commit()
            chat_id, message_id = job.chat_id, job.status_message_id
        if message_id:
            await safe_edit(self.bot, chat_id, message_id, _("✅ Done in {seconds} s.", seconds=round(elapsed, 1)))

    async def _send_photo(self, job: Job, _: Translator, rendered: Rendered) -> str | None:
        caption = self.caption(job, _, rendered.sizes[0])
        if job.params.get("as_document"):  # a full-resolution request: the PNG itself
            sent = await self.send_png(job, rendered.paths[0], caption, None)
            return sent.document.file_id if sent.document else None
        markup = self._keyboard(job, _, full_res=1)
        try:
            sent = await self.bot.send_photo(job.chat_id, photo=rendered.jpegs[0], caption=caption,
                                             reply_markup=markup, reply_parameters=quoting(job.reply_to))
        except BadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a file always goes through
            log.info("job %d: photo refused (%s), sending a file", job.id, exc)
            sent = await self.send_png(job, rendered.paths[0], caption, markup)
        if sent.photo:
            return sent.photo[-1].file_id
        return sent.document.file_id if sent.document else None

    async def send_png(self, job: Job, path: Path, caption: str, markup) -> Message:
        data = await asyncio.to_thread(path.read_bytes)
        return await self.bot.send_document(job.chat_id, document=data, filename=f"stylized_{path.stem}.png",
                                            caption=caption, reply_markup=markup,
                                            reply_parameters=quoting(job.reply_to))

    async def _send_album(self, job: Job, _: Translator, rendered: Rendered) -> str | None:
        """One media group (Telegram takes 2-10; longer albums go as several), then the buttons."""
        caption = self.caption(job, _)
        media = [InputMediaPhoto(data, caption=caption if i == 0 else None) for i, data in enumerate(rendered.jpegs)]
        first: str | None = None
        for start in range(0, len(media), 10):
            chunk = media[start:start + 10]
            if len(chunk) == 1:
                sent = [await self.bot.send_photo(job.chat_id, chunk[0].media, reply_parameters=quoting(job.reply_to))]
            else:
                sent = list(await self.bot.send_media_group(job.chat_id, chunk, reply_parameters=quoting(job.reply_to)))
            first = first or (sent[0].photo[-1].file_id if sent and sent[0].photo else None)
        text = _("Your {count} photos in {style}. The buttons change all of them; 📄 N sends photo N as a file.",
                 count=len(rendered.paths), style=self.style_title(job, _))
        await self.bot.send_message(job.chat_id, text, reply_markup=self._keyboard(job, _, len(rendered.paths)))
        return first

    async def _send_sheet(self, job: Job, _: Translator, rendered: Rendered) -> str | None:
        async with self.services.sessions() as session:
            presets = await store.listed_presets(session, self.services.methods)
        by_name = {p.name: p for p in presets}
        shown = [by_name[name] for name in job.params.get("presets", []) if name in by_name]
        markup = presets_keyboard(_, job.content_image_id, shown, 0, max(1, len(shown)), own_style=False, hq=False,
                                  all_styles=False)
        sent = await self.bot.send_photo(
            job.chat_id, photo=rendered.jpegs[0], reply_markup=markup, reply_parameters=quoting(job.reply_to),
            caption=_("All {count} styles on your photo. Tap one to get it at full size.", count=len(shown)))
        return sent.photo[-1].file_id if sent.photo else None

    async def _send_clip(self, job: Job, _: Translator, media: str, rendered: Rendered) -> str | None:
        """Send the clip back as the kind it came as: video, animation or round video note."""
        info = rendered.video
        path = rendered.paths[0]
        data = await asyncio.to_thread(path.read_bytes)
        duration = max(1, round(info.duration))  # type: ignore[attr-defined]
        width, height = rendered.sizes[0]
        markup = self._keyboard(job, _, full_res=0)
        caption = self.caption(job, _)
        reply = quoting(job.reply_to)
        if media == MediaKind.VIDEO_NOTE:
            sent = await self.bot.send_video_note(job.chat_id, video_note=data, duration=duration, length=width,
                                                  reply_markup=markup, reply_parameters=reply)
            clip = sent.video_note
        elif media == MediaKind.ANIMATION:
            sent = await self.bot.send_animation(job.chat_id, animation=data, duration=duration, width=width,
                                                 height=height, caption=caption, reply_markup=markup,
                                                 filename=f"stylized_{job.id}.mp4", reply_parameters=reply)
            clip = sent.animation or sent.document
        else:
            sent = await self.bot.send_video(job.chat_id, video=data, duration=duration, width=width, height=height,
                                             caption=caption, reply_markup=markup, supports_streaming=True,
                                             filename=f"stylized_{job.id}.mp4", reply_parameters=reply)
            clip = sent.video or sent.document
        return clip.file_id if clip is not None else None

    # -- status --------------------------------------------------------------------------------------

    async def notify(self, job: Job, text: str) -> None:
        if job.status_message_id:
            await safe_edit(self.bot, job.chat_id, job.status_message_id, text)
        else:
            await safe_send(self.bot, job.chat_id, text, reply_to=job.reply_to)

    async def tick(self, chat_id: int, media: str, live: Live, _: Translator,
                   shown: Callable[[str], Awaitable[bool]]) -> None:
        """While a job runs: keep the chat action alive and mirror progress into the status message (``shown``
        sends it when the job has none yet).

        Nothing at all for the first ``QUIET_SECONDS``: a quick job's photo is its only news (Telegram's
        30 messages/s are the bot's ceiling in jobs/s, and every status message and edit spends them). Methods
        that send previews (high quality) get one extra photo message, updated in place at most every
        ``PREVIEW_INTERVAL`` seconds and deleted when the job ends.
        """
        action = ChatAction.UPLOAD_VIDEO if media in MediaKind.CLIPS else ChatAction.UPLOAD_PHOTO
        last_action = last_preview = 0.0
        shown_preview, preview_id = 0, None
        try:
            await asyncio.sleep(self.settings.quiet_seconds)
            while True:
                now = time.monotonic()
                if now - last_action >= 4.5:  # a chat action lasts 5 s
                    last_action = now
                    with contextlib.suppress(TelegramError):
                        await self.bot.send_chat_action(chat_id, action)
                await shown(working_text(_, media, live))
                if (live.preview is not None and live.preview_version != shown_preview
                        and now - last_preview >= self.settings.preview_interval > 0):
                    shown_preview, last_preview = live.preview_version, now
                    preview_id = await self._show_preview(chat_id, preview_id, live, _) or preview_id
                await asyncio.sleep(self.settings.progress_interval)
        except asyncio.CancelledError:
            if preview_id is not None:
                with contextlib.suppress(TelegramError):
                    await self.bot.delete_message(chat_id, preview_id)
            raise

    async def _show_preview(self, chat_id: int, message_id: int | None, live: Live, _: Translator) -> int | None:
        """Send the preview photo, or swap the picture of the one already sent; failures only cost the preview."""
        assert live.preview is not None
        data = await asyncio.to_thread(jpeg, live.preview, 80)
        caption = _("👀 Preview")
        try:
            if message_id is None:
                sent = await self.bot.send_photo(chat_id, photo=data, caption=caption, disable_notification=True)
                return sent.message_id
            await self.bot.edit_message_media(InputMediaPhoto(data, caption=caption), chat_id=chat_id,
                                              message_id=message_id)
        except TelegramError as exc:
            log.debug("preview not shown: %s", exc)
        return message_id

    def cancel_markup(self, job: Job):
        return cancel_keyboard(translator(job.locale), job.id)
