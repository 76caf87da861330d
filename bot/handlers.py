"""The user-facing conversation: photos in, style menus, results and their buttons, commands.

The flow (brief §1): a photo (or image document) is stored once and answered with a paged preset
menu plus "use my own style" / "high quality"; a pick becomes a persisted job (``bot.jobs``); the
result carries buttons that create variant jobs (strength, colours, another style, HQ) or send the
full-resolution PNG. Every refusal goes through :func:`refuse`, which also records it in ``events``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path

from PIL import Image
from telegram import InputMediaPhoto, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from stylizer.errors import ImageError, VideoError
from stylizer.image import load_image
from stylizer.video import VideoLimits, probe

from . import keyboards, store
from .jobs import JobSpec, Refused
from .models import Job, MediaKind, PresetRow, StoredImage, User
from .services import Services, get_services
from .tg import with_retry

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE

HELP = (
    "Send me a photo and I'll repaint it in the style of a painting.\n\n"
    "1. Send a photo (or an image file for full quality).\n"
    "2. Pick a preset, or tap “🎨 Use my own style” and send the picture whose style you like.\n"
    "3. Use the buttons under the result to change the strength, keep the original colours, "
    "try another style, get the full-resolution file or re-run in high quality.\n\n"
    "Commands:\n"
    "/styles – gallery of preset styles\n"
    "/history – your recent results\n"
    "/settings – default strength, output size, colours\n"
    "/cancel – cancel what is running\n"
    "/privacy – what I store, and deleting it"
)
PRIVACY = (
    "What I store: your Telegram id, name and settings; the pictures you send (to run and re-run "
    "styles without downloading them again); the results; and a log of your requests. Nothing is "
    "shared with anyone. You can delete all of it at any time."
)
#: Telegram refuses photos whose sides differ by more than 20x.
MAX_ASPECT = 20
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


# -- helpers ---------------------------------------------------------------------------------------

async def mark(update: Update, outcome: str, reason: str | None = None, job_id: int | None = None,
               services: Services | None = None, context: Context | None = None) -> None:
    services = services or get_services(context)  # type: ignore[arg-type]
    async with services.sessions() as session:
        await store.mark_event(session, update.update_id, outcome, reason, job_id)
        await session.commit()


async def reply(update: Update, context: Context, text: str, reply_markup=None) -> Message | None:
    chat = update.effective_chat
    if chat is None:
        return None
    return await with_retry(lambda: context.bot.send_message(chat.id, text, reply_markup=reply_markup))


async def refuse(update: Update, context: Context, reason: str, text: str) -> None:
    """Decline politely, and record why in ``events``."""
    await mark(update, "rejected", reason, context=context)
    if update.callback_query is not None:
        await _answer(update)
    await reply(update, context, text)


async def _answer(update: Update, text: str | None = None) -> None:
    query = update.callback_query
    if query is not None:
        try:
            await query.answer(text)
        except TelegramError as exc:  # too old a query, network: the user only misses a toast
            log.debug("answerCallbackQuery failed: %s", exc)


async def _user(services: Services, update: Update) -> User:
    async with services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        await session.commit()
        return user


def user_params(services: Services, user: User, method: str) -> dict:
    settings = services.settings
    params: dict = {
        "strength": user.strength or settings.default_strength,
        "preserve_color": bool(user.preserve_color),
        "size": min(user.output_size or settings.output_size, settings.max_output_size),
    }
    if method == "gatys" and settings.gatys_steps:
        params["steps"] = settings.gatys_steps
    return params


async def submit(update: Update, context: Context, spec: JobSpec) -> Job | None:
    services = get_services(context)
    assert services.runner is not None
    try:
        job = await services.runner.accept(spec)
    except Refused as exc:
        await refuse(update, context, "limit", str(exc))
        return None
    await mark(update, "accepted", job_id=job.id, services=services)
    await _answer(update, "Queued ✔")
    return job


# -- receiving pictures ----------------------------------------------------------------------------

def _inspect(data: bytes, max_side: int) -> tuple[int, int, str]:
    """Decode fully (corrupt files fail here, not in a worker) and check the size limits."""
    image = load_image(data)
    width, height = image.size
    if max(width, height) > max_side:
        raise ImageError(f"image is too large: {width}x{height}, the longest side may be at most {max_side} px")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(f"image is too long and thin ({width}x{height}); the sides may differ at most {MAX_ASPECT}x")
    with Image.open(io.BytesIO(data)) as raw:
        ext = IMAGE_FORMATS.get(raw.format or "", "img")
    return width, height, ext


async def _download(update: Update, context: Context, file_id: str, file_size: int | None,
                    what: str = "picture") -> bytes | None:
    """The file's bytes within Telegram's getFile limit; None after a friendly refusal."""
    settings = get_services(context).settings
    limit_mb = settings.max_upload_mb
    if file_size and file_size > settings.max_upload_bytes:
        await refuse(update, context, "file too large",
                     f"That file is {file_size / 2**20:.1f} MB, but I can only download files up to "
                     f"{limit_mb:g} MB. Please send a smaller {what}"
                     + (" (or send it as a photo)." if what == "picture" else "."))
        return None
    try:
        tg_file = await with_retry(lambda: context.bot.get_file(file_id))
        data = bytes(await tg_file.download_as_bytearray())
    except TelegramError as exc:
        log.info("download of %s failed: %s", file_id, exc)
        await refuse(update, context, "download failed",
                     "I couldn't download that file from Telegram. Please try sending it again.")
        return None
    if len(data) > settings.max_upload_bytes:
        await refuse(update, context, "file too large", f"That file is larger than {limit_mb:g} MB.")
        return None
    return data


async def _known(services: Services, user_id: int, file_unique_id: str) -> StoredImage | None:
    async with services.sessions() as session:
        known = await store.find_image(session, user_id, file_unique_id)
    return known if known is not None and Path(known.path).is_file() else None


async def _save_input(services: Services, user_id: int, file_id: str, file_unique_id: str, path: Path,
                      width: int, height: int, kind: str = MediaKind.PHOTO,
                      duration: float | None = None) -> StoredImage:
    async with services.sessions() as session:
        image = await store.find_image(session, user_id, file_unique_id)
        if image is None:
            image = StoredImage(user_id=user_id, file_unique_id=file_unique_id, file_id=file_id)
            session.add(image)
        image.path, image.file_id, image.width, image.height = str(path), file_id, width, height
        image.kind, image.duration = kind, duration
        await session.commit()
        return image


def _input_path(services: Services, user_id: int, file_unique_id: str, ext: str) -> Path:
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", file_unique_id)[:100]
    return services.settings.images_dir / str(user_id) / f"{safe_id}.{ext}"


async def intake(update: Update, context: Context, file_id: str, file_unique_id: str,
                 file_size: int | None) -> StoredImage | None:
    """Download (once per file_unique_id), validate and store a picture; None after a friendly refusal."""
    services = get_services(context)
    user_id = update.effective_user.id  # type: ignore[union-attr]
    known = await _known(services, user_id, file_unique_id)
    if known is not None:
        return known
    data = await _download(update, context, file_id, file_size)
    if data is None:
        return None
    try:
        width, height, ext = await asyncio.to_thread(_inspect, data, services.settings.max_image_side)
    except ImageError as exc:
        reason = str(exc).removeprefix("image: ")
        await refuse(update, context, f"bad image: {reason}",
                     f"😕 I can't use that picture: {reason}.\nPlease send a normal photo (JPEG or PNG).")
        return None
    path = _input_path(services, user_id, file_unique_id, ext)
    await asyncio.to_thread(_write, path, data)
    return await _save_input(services, user_id, file_id, file_unique_id, path, width, height)


async def intake_clip(update: Update, context: Context, kind: str, file_id: str, file_unique_id: str,
                      file_size: int | None) -> StoredImage | None:
    """Download, probe (decodable, duration and size limits) and store a video, GIF or video note."""
    services = get_services(context)
    settings = services.settings
    user_id = update.effective_user.id  # type: ignore[union-attr]
    known = await _known(services, user_id, file_unique_id)
    if known is not None:
        return known
    word = MediaKind.NOUNS[kind]
    data = await _download(update, context, file_id, file_size, what=word)
    if data is None:
        return None
    path = _input_path(services, user_id, file_unique_id, "mp4")
    await asyncio.to_thread(_write, path, data)
    limits = VideoLimits(max_seconds=settings.max_video_seconds, max_side=settings.max_image_side)
    try:
        info = await asyncio.to_thread(probe, path, limits)
    except VideoError as exc:
        path.unlink(missing_ok=True)
        reason = str(exc).split(": ", 1)[-1]
        await refuse(update, context, f"bad {kind}: {reason}", f"😕 I can't use that {word}: {reason}.")
        return None
    return await _save_input(services, user_id, file_id, file_unique_id, path, info.width, info.height, kind,
                             round(info.duration, 2))


async def on_clip(update: Update, context: Context) -> None:
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
    async with get_services(context).sessions() as session:  # a clip is never a style: it starts afresh
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        user.awaiting_image_id = user.awaiting_method = None
        await session.commit()
    await show_presets(update, context, clip.id, page=0)
    await mark(update, "accepted", f"content {kind}", context=context)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


async def on_photo(update: Update, context: Context) -> None:
    photo = update.effective_message.photo[-1]  # type: ignore[union-attr]
    image = await intake(update, context, photo.file_id, photo.file_unique_id, photo.file_size)
    if image is not None:
        await route_image(update, context, image)


async def on_image_document(update: Update, context: Context) -> None:
    doc = update.effective_message.document  # type: ignore[union-attr]
    image = await intake(update, context, doc.file_id, doc.file_unique_id, doc.file_size)
    if image is not None:
        await route_image(update, context, image)


async def route_image(update: Update, context: Context, image: StoredImage) -> None:
    """A style picture when the user asked for "own style", otherwise a new photo to stylize."""
    services = get_services(context)
    user_id = image.user_id
    async with services.sessions() as session:  # one user's updates never run concurrently (bot.app)
        user = await session.get(User, user_id)
        assert user is not None
        content_id, method = user.awaiting_image_id, user.awaiting_method
        content = await store.user_image(session, user_id, content_id) if content_id else None
        if content_id:
            user.awaiting_image_id = user.awaiting_method = None
            await session.commit()
    if content is not None and method:
        spec = JobSpec(user_id=user_id, chat_id=update.effective_chat.id, content_image_id=content.id,  # type: ignore[union-attr]
                       style_image_id=image.id, method=method, params=user_params(services, user, method))
        await submit(update, context, spec)
        return
    await show_presets(update, context, image.id, page=0)
    await mark(update, "accepted", "content photo", services=services)


async def show_presets(update: Update, context: Context, image_id: int, page: int, edit: bool = False) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        presets = await store.listed_presets(session, services.methods)
        content = await session.get(StoredImage, image_id)
    clip = content is not None and content.is_clip
    markup = keyboards.presets_keyboard(image_id, presets, page, services.settings.presets_per_page,
                                        own_style=services.own_style_method() is not None,
                                        hq=services.hq_method is not None and not clip)
    if presets:
        what = MediaKind.NOUNS[content.kind] if clip and content is not None else "photo"
        text = f"Pick a style for this {what} 🎨 (see them all with /styles)"
    elif services.own_style_method():
        text = "No preset styles are installed yet — tap “Use my own style” and send a picture to copy the style of."
    else:
        text = "Sorry, no styles are available right now. Please try again later."
    if edit and update.callback_query is not None:
        try:
            await update.callback_query.edit_message_reply_markup(markup)
            return
        except TelegramError as exc:
            log.debug("keyboard edit failed (%s); sending a new menu", exc)
    await reply(update, context, text, markup)


# -- callbacks -------------------------------------------------------------------------------------

async def on_callback(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    code, *args = (query.data or "").split(":")
    handler = CALLBACKS.get(code)
    if handler is None:
        from . import admin  # admin callbacks live with the admin commands

        handler = admin.CALLBACKS.get(code)
    if handler is None or not all(a.lstrip("-").isdigit() or a.isalpha() for a in args):
        await _answer(update)
        if code != "noop":
            await mark(update, "rejected", f"unknown button {query.data!r}", context=context)
        return
    await handler(update, context, *args)


async def cb_page(update: Update, context: Context, image_id: str, page: str) -> None:
    await _answer(update)
    await show_presets(update, context, int(image_id), int(page), edit=True)


async def _own_image(update: Update, context: Context, image_id: int) -> StoredImage | None:
    async with get_services(context).sessions() as session:
        image = await store.user_image(session, update.effective_user.id, image_id)  # type: ignore[union-attr]
    if image is None or not Path(image.path).is_file():
        await refuse(update, context, "image gone", "I don't have that photo any more — please send it again.")
        return None
    return image


async def cb_preset(update: Update, context: Context, image_id: str, preset_id: str) -> None:
    services = get_services(context)
    image = await _own_image(update, context, int(image_id))
    if image is None:
        return
    async with services.sessions() as session:
        preset = await session.get(PresetRow, int(preset_id))
    if preset is None or not (preset.enabled and preset.available) or preset.method not in services.methods:
        await refuse(update, context, "preset unavailable", "That style is no longer available — please pick another.")
        return
    user = await _user(services, update)
    spec = JobSpec(user_id=user.id, chat_id=update.effective_chat.id, content_image_id=image.id,  # type: ignore[union-attr]
                   preset=preset.name, method=preset.method, params=user_params(services, user, preset.method))
    await submit(update, context, spec)


async def _await_style(update: Update, context: Context, image_id: int, method: str | None, text: str) -> None:
    services = get_services(context)
    if method is None:
        await refuse(update, context, "method unavailable", "Sorry, that mode isn't available right now.")
        return
    image = await _own_image(update, context, image_id)
    if image is None:
        return
    async with services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        user.awaiting_image_id, user.awaiting_method = image.id, method
        await session.commit()
    await _answer(update)
    await mark(update, "accepted", f"awaiting style ({method})", services=services)
    await reply(update, context, text)


async def _is_clip(services: Services, image_id: int) -> bool:
    async with services.sessions() as session:
        image = await session.get(StoredImage, image_id)
    return image is not None and image.is_clip


async def cb_own_style(update: Update, context: Context, image_id: str) -> None:
    services = get_services(context)
    await _await_style(update, context, int(image_id), services.own_style_method(),
                       "🎨 Now send me the picture whose style you like (a painting, a pattern, anything). "
                       "/cancel to stop.")


async def cb_high_quality(update: Update, context: Context, image_id: str) -> None:
    services = get_services(context)
    if await _is_clip(services, int(image_id)):
        await refuse(update, context, "hq for a clip", "High quality mode is for photos only — pick a style instead.")
        return
    await _await_style(update, context, int(image_id), services.hq_method,
                       "✨ High quality mode: send me the style picture. This takes a few minutes; "
                       "I'll show the progress. /cancel to stop.")


async def cb_cancel_job(update: Update, context: Context, job_id: str) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        job = await store.user_job(session, update.effective_user.id, int(job_id))  # type: ignore[union-attr]
    if job is None:
        await _answer(update, "Not found")
        return
    assert services.runner is not None
    cancelled = await services.runner.cancel(job.id)
    await mark(update, "accepted" if cancelled else "rejected", "cancel job", job_id=job.id, services=services)
    await _answer(update, "Cancelling…" if cancelled else "It has already finished.")


async def _parent(update: Update, context: Context, job_id: int) -> Job | None:
    async with get_services(context).sessions() as session:
        job = await store.user_job(session, update.effective_user.id, job_id)  # type: ignore[union-attr]
    if job is None:
        await refuse(update, context, "job gone", "I don't have that result any more — please send the photo again.")
    return job


async def _variant(update: Update, context: Context, parent: Job, **changes) -> None:
    services = get_services(context)
    method = changes.pop("method", parent.method)
    params = {**{k: v for k, v in parent.params.items() if k != "as_document"}, **changes}
    if method == "gatys" and services.settings.gatys_steps:
        params["steps"] = services.settings.gatys_steps
    spec = JobSpec(user_id=parent.user_id, chat_id=update.effective_chat.id,  # type: ignore[union-attr]
                   content_image_id=parent.content_image_id, style_image_id=parent.style_image_id,
                   preset=parent.preset, method=method, params=params, parent_id=parent.id)
    await submit(update, context, spec)


async def cb_strength(update: Update, context: Context, job_id: str, pct: str) -> None:
    parent = await _parent(update, context, int(job_id))
    if parent is None:
        return
    strength = min(max(int(pct), 1), 100) / 100
    if abs(float(parent.params.get("strength", 1.0)) - strength) < 1e-6:
        await _answer(update, f"This one is already at {pct}%")
        return
    await _variant(update, context, parent, strength=strength)


async def cb_colours(update: Update, context: Context, job_id: str) -> None:
    parent = await _parent(update, context, int(job_id))
    if parent is not None:
        await _variant(update, context, parent, preserve_color=not parent.params.get("preserve_color"))


async def cb_another(update: Update, context: Context, job_id: str) -> None:
    parent = await _parent(update, context, int(job_id))
    if parent is None:
        return
    await _answer(update)
    await mark(update, "accepted", "another style", context=context)
    await show_presets(update, context, parent.content_image_id, page=0)


async def cb_full_res(update: Update, context: Context, job_id: str) -> None:
    """The lossless PNG; when the photo was smaller than the original allows, re-render it larger first."""
    services = get_services(context)
    parent = await _parent(update, context, int(job_id))
    if parent is None:
        return
    async with services.sessions() as session:
        content = await session.get(StoredImage, parent.content_image_id)
    if content is not None and content.is_clip:
        await refuse(update, context, "full resolution of a clip", "Clips come back at their full size already.")
        return
    full = min(max(content.width, content.height), services.settings.max_output_size) if content else 0
    if full > int(parent.params.get("size", 0)):
        await _variant(update, context, parent, size=full, as_document=True)
        return
    path = Path(parent.result_path) if parent.result_path else None
    if path is None or not path.is_file():
        await refuse(update, context, "result gone", "Sorry, I no longer have that file. Try the style again.")
        return
    await _answer(update, "Sending the file…")
    await mark(update, "accepted", "full resolution", job_id=parent.id, context=context)
    data = await asyncio.to_thread(path.read_bytes)
    await with_retry(lambda: context.bot.send_document(update.effective_chat.id, document=data,  # type: ignore[union-attr]
                                                       filename=f"stylized_{parent.id}.png"))


async def cb_high_quality_rerun(update: Update, context: Context, job_id: str) -> None:
    services = get_services(context)
    parent = await _parent(update, context, int(job_id))
    if parent is None:
        return
    if services.hq_method is None:
        await refuse(update, context, "method unavailable", "Sorry, high quality mode isn't available right now.")
        return
    if await _is_clip(services, parent.content_image_id):
        await refuse(update, context, "hq for a clip", "High quality mode is for photos only.")
        return
    extra: dict = {}
    if parent.style_image_id is None:
        picture = services.preset_style_image(parent.preset)
        if picture is None:
            await refuse(update, context, "no style image", "Sorry, this style has no picture for high quality mode.")
            return
        extra["style_file"] = str(picture)
    await _variant(update, context, parent, method=services.hq_method, **extra)


# -- commands --------------------------------------------------------------------------------------

async def cmd_start(update: Update, context: Context) -> None:
    name = update.effective_user.first_name if update.effective_user else ""
    await reply(update, context, f"Hi {name}! 👋\n\n{HELP}")


async def cmd_help(update: Update, context: Context) -> None:
    await reply(update, context, HELP)


async def cmd_styles(update: Update, context: Context) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        presets = await store.listed_presets(session, services.methods)
    if not presets:
        await reply(update, context, "No preset styles are installed yet. You can always use your own style: "
                                     "send a photo and tap “🎨 Use my own style”.")
        return
    manifest = services.stylizer.manifest
    with_thumbs: list[tuple[PresetRow, Path]] = []
    for row in presets:
        thumb = manifest.presets[row.name].thumbnail if row.name in manifest.presets else None
        if thumb is not None and thumb.is_file():
            with_thumbs.append((row, thumb))
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    for start in range(0, len(with_thumbs), 10):  # sendMediaGroup takes 2..10 items
        chunk = with_thumbs[start:start + 10]
        media = [InputMediaPhoto(await asyncio.to_thread(p.read_bytes), caption=row.display_name or row.name)
                 for row, p in chunk]
        try:
            if len(media) == 1:
                await with_retry(lambda m=media[0]: context.bot.send_photo(chat_id, m.media, caption=m.caption))
            else:
                await with_retry(lambda m=media: context.bot.send_media_group(chat_id, m))
        except TelegramError as exc:
            log.warning("gallery failed: %s", exc)
            with_thumbs = []
            break
    lines = [f"• {row.display_name or row.name} ({row.method})" for row in presets]
    await reply(update, context, "Preset styles:\n" + "\n".join(lines) + "\n\nSend a photo to use one.")


async def cmd_history(update: Update, context: Context) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        jobs = await store.recent_results(session, update.effective_user.id, services.settings.history_size)  # type: ignore[union-attr]
    if not jobs:
        await reply(update, context, "No results yet. Send me a photo to start!")
        return
    from .jobs import style_title

    titles = {job.id: style_title(job, services) for job in jobs}
    lines = [f"#{job.id} · {titles[job.id]} · {job.method} · {job.finished_at:%Y-%m-%d %H:%M} UTC" for job in jobs
             if job.finished_at]
    await reply(update, context, "Your recent results (tap to try another style on the same photo):\n"
                + "\n".join(lines), keyboards.history_keyboard(jobs, titles))


def _size_choices(services: Services) -> list[int]:
    """Up to five sizes, always including the bot's default."""
    s = services.settings
    others = [z for z in keyboards.SIZES if z <= s.max_output_size and z != s.output_size]
    return sorted([s.output_size, *others[-4:]])


def _settings_view(services: Services, user: User) -> tuple[str, object]:
    s = services.settings
    strength = user.strength or s.default_strength
    size = min(user.output_size or s.output_size, s.max_output_size)
    text = (f"⚙ Your settings\nStrength: {round(100 * strength)}%\nOutput size: {size}px (long side)\n"
            f"Keep original colours: {'on' if user.preserve_color else 'off'}")
    return text, keyboards.settings_keyboard(strength, size, bool(user.preserve_color), _size_choices(services))


async def cmd_settings(update: Update, context: Context) -> None:
    services = get_services(context)
    text, markup = _settings_view(services, await _user(services, update))
    await reply(update, context, text, markup)


async def cb_settings(update: Update, context: Context, what: str, value: str = "") -> None:
    services = get_services(context)
    async with services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        if what == "s" and value.isdigit() and int(value) in keyboards.STRENGTHS:
            user.strength = int(value) / 100
        elif what == "z" and value.isdigit() and int(value) in _size_choices(services):
            user.output_size = int(value)
        elif what == "c":
            user.preserve_color = not user.preserve_color
        else:
            await refuse(update, context, "bad setting", "That option isn't available.")
            return
        await session.commit()
    text, markup = _settings_view(services, user)
    await _answer(update, "Saved ✔")
    await mark(update, "accepted", f"setting {what}={value}", services=services)
    try:
        await update.callback_query.edit_message_text(text, reply_markup=markup)  # type: ignore[union-attr]
    except TelegramError as exc:
        log.debug("settings edit failed: %s", exc)


async def cmd_cancel(update: Update, context: Context) -> None:
    services = get_services(context)
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with services.sessions() as session:
        user = await session.get(User, user_id)
        waiting = user is not None and user.awaiting_image_id is not None
        if waiting:
            user.awaiting_image_id = user.awaiting_method = None  # type: ignore[union-attr]
            await session.commit()
        jobs = await store.active_jobs(session, user_id)
    assert services.runner is not None
    cancelled = [job.id for job in jobs if await services.runner.cancel(job.id)]
    if cancelled:
        text = f"✖ Cancelled {len(cancelled)} picture(s)."
    elif waiting:
        text = "OK, no own style then. Send me a photo whenever you like."
    else:
        text = "There's nothing to cancel."
    await mark(update, "accepted", f"cancel {cancelled}", services=services)
    await reply(update, context, text)


async def cmd_privacy(update: Update, context: Context) -> None:
    await reply(update, context, PRIVACY, keyboards.privacy_keyboard())


async def cb_privacy(update: Update, context: Context, what: str) -> None:
    services = get_services(context)
    query = update.callback_query
    assert query is not None
    await _answer(update)
    if what == "ask":
        await query.edit_message_text(PRIVACY + "\n\nDelete everything I have about you? This cannot be undone.",
                                      reply_markup=keyboards.privacy_keyboard(confirm=True))
        return
    if what != "yes":
        await query.edit_message_text(PRIVACY + "\n\nNothing was deleted.")
        return
    user_id = update.effective_user.id  # type: ignore[union-attr]
    assert services.runner is not None
    async with services.sessions() as session:
        jobs = await store.active_jobs(session, user_id)
    for job in jobs:
        await services.runner.cancel(job.id)
    async with services.sessions() as session:
        files = await store.delete_user_data(session, user_id)
        await session.commit()
    removed = await asyncio.to_thread(_remove_files, files)
    log.info("deleted the data of user %s (%d files)", user_id, removed)
    await query.edit_message_text("🗑 Done: I deleted your settings, pictures, results and history.")


def _remove_files(files: list[Path]) -> int:
    removed = 0
    for path in files:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


# -- everything else -------------------------------------------------------------------------------

async def on_text(update: Update, context: Context) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        user = await session.get(User, update.effective_user.id)  # type: ignore[union-attr]
    if user is not None and user.awaiting_image_id:
        await refuse(update, context, "text while waiting for style",
                     "I'm waiting for the style picture 🙂 Send me an image, or /cancel.")
    else:
        await refuse(update, context, "unexpected text",
                     "Send me a photo and I'll turn it into a painting 🎨 (/help explains more).")


BAD_INPUT = {
    "sticker": "Stickers are fun, but I need a photo 🙂 Send me a picture (as a photo or an image file).",
    "voice": "I can't do anything with voice messages — please send a photo.",
    "document": "That file isn't a picture I can use. Please send a photo or an image file (JPEG, PNG, WebP).",
    "other": "I only understand photos and image files. Send me a picture! (/help)",
}


def bad_input(kind: str):
    async def handler(update: Update, context: Context) -> None:
        await refuse(update, context, f"unsupported {kind}", BAD_INPUT[kind])

    handler.__name__ = f"on_{kind}"
    return handler


async def on_unknown_command(update: Update, context: Context) -> None:
    await refuse(update, context, "unknown command", "I don't know that command. /help lists what I can do.")


CALLBACKS = {
    "pg": cb_page,
    "ps": cb_preset,
    "ow": cb_own_style,
    "hq": cb_high_quality,
    "x": cb_cancel_job,
    "rs": cb_strength,
    "rc": cb_colours,
    "ra": cb_another,
    "rf": cb_full_res,
    "rh": cb_high_quality_rerun,
    "se": cb_settings,
    "pv": cb_privacy,
}
