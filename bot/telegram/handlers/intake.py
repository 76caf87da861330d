"""Pictures and clips coming in: download once, validate, store, then a style menu (or the awaited job).

Photos, image documents (JPEG, PNG, WebP, AVIF, HEIC/HEIF from iPhones...), albums (photos sharing a
``media_group_id``: one menu after the last one arrives), videos, GIF animations and video notes.
Anything else gets a clear message and is recorded.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import timedelta
from pathlib import Path

from PIL import Image
from telegram import Update
from telegram.error import TelegramError

from stylizer.errors import ImageError, VideoError
from stylizer.image import IMAGE_FORMATS, load_image
from stylizer.video import probe

from ... import i18n, store
from ...i18n import N_
from ...inputs import check_picture
from ...jobs import JobSpec
from ...jobs.render import video_limits
from ...models import MediaKind, StoredImage, User, utcnow
from ...services import Services
from ..context import BotContext
from ..tg import quoting
from .common import inputs_of, mark, refuse, submit, user_params
from .menu import menu, show_presets

log = logging.getLogger(__name__)

#: the stored file's extension per Pillow format
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
              "AVIF": "avif", "HEIF": "heic"}


def _inspect(data: bytes, max_side: int) -> tuple[int, int, str]:
    """Decode fully (corrupt files fail here, not in a worker) and check the size limits."""
    image = load_image(data)
    width, height = image.size
    check_picture(width, height, max_side)
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as raw:
        ext = EXTENSIONS.get(raw.format or "", "img")
    return width, height, ext


async def _download(update: Update, context: BotContext, file_id: str, file_size: int | None,
                    noun: str) -> bytes | None:
    """The file's bytes within Telegram's getFile limit; None after a friendly refusal."""
    settings = context.services.settings
    _ = context.tr
    limit_mb = settings.max_upload_mb
    if file_size and file_size > settings.max_upload_bytes:
        await refuse(update, context, "file too large",
                     _("That file is {size} MB, but I can only download files up to {limit} MB. "
                       "Please send a smaller {noun}.", size=f"{file_size / 2**20:.1f}", limit=f"{limit_mb:g}",
                       noun=noun))
        return None
    try:
        tg_file = await context.bot.get_file(file_id)
        data = bytes(await tg_file.download_as_bytearray())
    except TelegramError as exc:
        log.info("download of %s failed: %s", file_id, exc)
        await refuse(update, context, "download failed",
                     _("I couldn't download that file from Telegram. Please try sending it again."))
        return None
    if len(data) > settings.max_upload_bytes:
        await refuse(update, context, "file too large",
                     _("That file is larger than {limit} MB.", limit=format(limit_mb, "g")))
        return None
    return data


async def _known(services: Services, user_id: int, file_unique_id: str) -> StoredImage | None:
    async with services.sessions() as session:
        known = await store.find_image(session, user_id, file_unique_id)
    return known if known is not None and Path(known.path).is_file() else None


async def save_input(services: Services, user_id: int, file_id: str, file_unique_id: str, path: Path | None,
                     width: int = 0, height: int = 0, kind: str = MediaKind.PHOTO, duration: float | None = None,
                     message_id: int | None = None, album_id: int | None = None) -> StoredImage:
    """Create or refresh the row of an input; ``path=None`` keeps a known file (only the message changes)."""
    async with services.sessions() as session:
        image = await store.find_image(session, user_id, file_unique_id)
        if image is None:
            image = StoredImage(user_id=user_id, file_unique_id=file_unique_id, file_id=file_id, kind=kind)
            session.add(image)
        if path is not None:
            image.path, image.width, image.height = str(path), width, height
            image.kind, image.duration = kind, duration
        image.file_id, image.message_id, image.album_id = file_id, message_id, album_id
        await session.commit()
        return image


def input_path(services: Services, user_id: int, file_unique_id: str, ext: str) -> Path:
    return services.settings.images_dir / str(user_id) / f"{store.file_stem(file_unique_id)}.{ext}"


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


async def intake(update: Update, context: BotContext, file_id: str, file_unique_id: str,
                 file_size: int | None, album_id: int | None = None) -> StoredImage | None:
    """Download (once per file_unique_id), validate and store a picture; None after a friendly refusal."""
    services = context.services
    _ = context.tr
    user_id = update.effective_user.id  # type: ignore[union-attr]
    message_id = update.effective_message.message_id if update.effective_message else None
    if await _known(services, user_id, file_unique_id) is not None:
        return await save_input(services, user_id, file_id, file_unique_id, None, message_id=message_id,
                                album_id=album_id)
    data = await _download(update, context, file_id, file_size, _(MediaKind.NOUNS[MediaKind.PHOTO]))
    if data is None:
        return None
    try:
        async with services.decodes:  # a few full decodes at a time, however many users send pictures at once
            width, height, ext = await asyncio.to_thread(_inspect, data, services.settings.max_image_side)
    except ImageError as exc:
        reason = str(exc).removeprefix("image: ")
        await refuse(update, context, f"bad image: {reason}",
                     _("😕 I can't use that picture: {reason}.\nPlease send a normal photo "
                       "(JPEG, PNG, WebP or HEIC).", reason=reason))
        return None
    path = input_path(services, user_id, file_unique_id, ext)
    await asyncio.to_thread(write_file, path, data)
    return await save_input(services, user_id, file_id, file_unique_id, path, width, height,
                            message_id=message_id, album_id=album_id)


async def intake_clip(update: Update, context: BotContext, kind: str, file_id: str, file_unique_id: str,
                      file_size: int | None) -> StoredImage | None:
    """Download, probe (decodable, duration and size limits) and store a video, GIF or video note."""
    services = context.services
    settings = services.settings
    _ = context.tr
    user_id = update.effective_user.id  # type: ignore[union-attr]
    message_id = update.effective_message.message_id if update.effective_message else None
    if await _known(services, user_id, file_unique_id) is not None:
        return await save_input(services, user_id, file_id, file_unique_id, None, message_id=message_id)
    noun = _(MediaKind.NOUNS[kind])
    data = await _download(update, context, file_id, file_size, noun)
    if data is None:
        return None
    path = input_path(services, user_id, file_unique_id, "mp4")
    await asyncio.to_thread(write_file, path, data)
    try:
        info = await asyncio.to_thread(probe, path, video_limits(settings))
    except VideoError as exc:
        path.unlink(missing_ok=True)
        reason = str(exc).split(": ", 1)[-1]
        await refuse(update, context, f"bad {kind}: {reason}",
                     _("😕 I can't use that {noun}: {reason}.", noun=noun, reason=reason))
        return None
    return await save_input(services, user_id, file_id, file_unique_id, path, info.width, info.height, kind,
                            round(info.duration, 2), message_id=message_id)


async def on_clip(update: Update, context: BotContext) -> None:
    """Videos, GIF animations and round video notes: the same style menu as photos (no high quality)."""
    message = update.effective_message
    assert message is not None
    if message.animation is not None:
        kind, media = MediaKind.ANIMATION, message.animation
    elif message.video_note is not None:
        kind, media = MediaKind.VIDEO_NOTE, message.video_note
    else:  # a video, or a video file sent as a document
        kind, media = MediaKind.VIDEO, message.video or message.document
    assert media is not None
    clip = await intake_clip(update, context, kind, media.file_id, media.file_unique_id, media.file_size)
    if clip is None:
        return
    async with context.services.sessions() as session:  # a clip is never a style: it starts afresh
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        user.awaiting_image_id = user.awaiting_method = None
        await session.commit()
    await show_presets(update, context, clip.id, quote=message.message_id)
    await mark(update, context, "accepted", f"content {kind}")


async def on_photo(update: Update, context: BotContext) -> None:
    message = update.effective_message
    assert message is not None and message.photo
    photo = message.photo[-1]
    side = context.services.settings.max_image_side
    if max(photo.width, photo.height) > side:  # Telegram says the size: refused before any download
        await refuse(update, context, f"photo too large: {photo.width}x{photo.height}",
                     context.tr("😕 I can't use that picture: it is {width}×{height}, the longest side may be at most "
                                "{side} px.", width=photo.width, height=photo.height, side=side))
        return
    await _picture(update, context, photo.file_id, photo.file_unique_id, photo.file_size)


async def on_image_document(update: Update, context: BotContext) -> None:
    doc = update.effective_message.document  # type: ignore[union-attr]
    assert doc is not None
    await _picture(update, context, doc.file_id, doc.file_unique_id, doc.file_size)


async def _picture(update: Update, context: BotContext, file_id: str, unique_id: str, size: int | None) -> None:
    message = update.effective_message
    assert message is not None
    if not message.media_group_id:
        image = await intake(update, context, file_id, unique_id, size)
        if image is not None:
            await route_image(update, context, image)
        return
    async with context.services.sessions() as session:
        album, _created = await store.album(session, message.from_user.id, message.media_group_id)  # type: ignore[union-attr]
        await session.commit()
    pending: dict[int, int] = context.bot_data.setdefault("albums in intake", {})
    pending[album.id] = pending.get(album.id, 0) + 1
    _schedule_album_menu(update, context, album.id)  # restarted by every photo, before its download
    try:
        image = await intake(update, context, file_id, unique_id, size, album.id)
    finally:
        pending[album.id] -= 1
    if image is not None:
        await mark(update, context, "accepted", f"album {album.id} photo")


def _schedule_album_menu(update: Update, context: BotContext, album_id: int) -> None:
    """An album's photos arrive as separate updates: (re)start a short timer, then one menu for all."""
    assert context.job_queue is not None
    name = f"album-{album_id}"
    for pending in context.job_queue.get_jobs_by_name(name):
        pending.schedule_removal()
    context.job_queue.run_once(_album_menu, context.services.settings.album_wait, name=name,
                               chat_id=update.effective_chat.id, user_id=update.effective_user.id,  # type: ignore[union-attr]
                               data={"album": album_id, "locale": context.locale})


async def _first_of_album(context: BotContext, album_id: int) -> int | None:
    async with context.services.sessions() as session:
        images = await store.album_images(session, album_id)
    return images[0].id if images else None


async def _album_menu(context: BotContext) -> None:
    """JobQueue callback: the album is complete; unless the user awaited a style, show one menu."""
    job = context.job
    assert job is not None and job.chat_id is not None
    data: dict = job.data  # type: ignore[assignment]
    if context.bot_data.get("albums in intake", {}).get(data["album"]):  # a photo is still downloading
        context.job_queue.run_once(_album_menu, 0.3, name=job.name, chat_id=job.chat_id,  # type: ignore[union-attr]
                                   user_id=job.user_id, data=data)
        return
    services = context.services
    _ = i18n.translator(data["locale"])
    first = await _first_of_album(context, data["album"])
    if first is None:  # every photo of it was refused (too large, corrupt...)
        return
    async with services.sessions() as session:
        if not await store.claim_album_menu(session, data["album"]):  # another replica's timer sent it
            return
        image = await session.get(StoredImage, first)
    text, markup = await menu(services, _, first)
    await context.bot.send_message(job.chat_id, text, reply_markup=markup,
                                   reply_parameters=quoting(image.message_id if image else None))


def _still_waiting(services: Services, user: User) -> bool:
    if not user.awaiting_image_id:
        return False
    since = user.awaiting_since
    return since is None or utcnow() - since <= timedelta(minutes=services.settings.style_wait_minutes)


async def route_image(update: Update, context: BotContext, image: StoredImage) -> None:
    """A style picture when the user asked for one (and the request has not expired); the deep link's
    preset when one is pending; otherwise a new photo to pick a style for."""
    services = context.services
    user_id = image.user_id
    async with services.sessions() as session:  # one user's updates never run concurrently (bot.app)
        user = await session.get(User, user_id)
        assert user is not None
        waiting = _still_waiting(services, user)
        content_id, method, next_preset = user.awaiting_image_id, user.awaiting_method, user.next_preset
        content = await store.user_image(session, user_id, content_id) if waiting and content_id else None
        user.awaiting_image_id = user.awaiting_method = user.awaiting_since = None
        user.next_preset = None
        await session.commit()
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    if content is not None and method:
        spec = JobSpec.over(await inputs_of(context, content), user_id=user_id, chat_id=chat_id,
                            style_image_id=image.id, method=method, params=user_params(services, user, method),
                            reply_to=content.message_id)
        await submit(update, context, spec)
        return
    preset = services.stylizer.manifest.presets.get(next_preset or "")
    if preset is not None and preset.method in services.methods:
        spec = JobSpec(user_id=user_id, chat_id=chat_id, content_image_id=image.id, preset=preset.name,
                       method=preset.method, params=user_params(services, user, preset.method),
                       reply_to=image.message_id)
        await submit(update, context, spec)
        return
    await show_presets(update, context, image.id, quote=image.message_id)
    await mark(update, context, "accepted", "content photo")


async def on_text(update: Update, context: BotContext) -> None:
    _ = context.tr
    async with context.services.sessions() as session:
        user = await session.get(User, update.effective_user.id)  # type: ignore[union-attr]
    if user is not None and _still_waiting(context.services, user):
        await refuse(update, context, "text while waiting for style",
                     _("I'm waiting for the style picture 🙂 Send me an image, or /cancel."))
    else:
        await refuse(update, context, "unexpected text",
                     _("Send me a photo and I'll turn it into a painting 🎨 (/help explains more)."))


BAD_INPUT = {
    "sticker": N_("Stickers are fun, but I need a photo 🙂 Send me a picture (as a photo or an image file)."),
    "voice": N_("I can't do anything with voice messages — please send a photo."),
    "document": N_("That file isn't a picture I can use. Please send a photo or an image file "
                   "(JPEG, PNG, WebP, HEIC)."),
    "other": N_("I only understand photos and image files. Send me a picture! (/help)"),
}


def bad_input(kind: str):
    async def handler(update: Update, context: BotContext) -> None:
        await refuse(update, context, f"unsupported {kind}", context.tr(BAD_INPUT[kind]))

    handler.__name__ = f"on_{kind}"
    return handler


async def on_unknown_command(update: Update, context: BotContext) -> None:
    await refuse(update, context, "unknown command",
                 context.tr("I don't know that command. /help lists what I can do."))
