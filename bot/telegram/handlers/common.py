"""What every handler shares: recording updates, replying, refusing politely, submitting jobs.

Every refusal goes through :func:`refuse`, which also records why in ``events``; every update is
recorded first (group -1, :func:`record_update`), which also picks the update's language.
"""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.error import TelegramError

from ... import i18n, store
from ...jobs import JobSpec, Refused
from ...models import Job, StoredImage, User
from ...services import Services
from ..context import BotContext
from ..tg import quoting

log = logging.getLogger(__name__)


def classify(update: Update) -> tuple[str, str | None]:
    """What kind of request this is, for the ``events`` table."""
    if update.callback_query is not None:
        return "callback", update.callback_query.data
    if update.inline_query is not None:
        return "inline", update.inline_query.query[:120]
    message = update.effective_message
    if message is None:
        return "other", None
    if message.text:
        return ("command" if message.text.startswith("/") else "text"), message.text[:120]
    if message.photo:
        p = message.photo[-1]
        return "photo", f"{p.width}x{p.height} {p.file_size or '?'}B" + (
            f" album {message.media_group_id}" if message.media_group_id else "")
    if message.animation:
        return "animation", message.animation.mime_type
    if message.sticker:
        return "sticker", message.sticker.emoji
    for kind in ("video", "video_note", "voice", "audio"):
        if getattr(message, kind):
            return kind, None
    if message.document:
        d = message.document
        return "document", f"{d.mime_type} {d.file_name} {d.file_size or '?'}B"
    return "other", None


async def record_update(update: Update, context: BotContext) -> None:
    """Group -1: every update becomes an ``events`` row (and its sender a ``users`` row) first; the
    update's language is the user's /language choice, else their app's."""
    kind, detail = classify(update)
    user, chat = update.effective_user, update.effective_chat
    async with context.services.sessions() as session:
        if user is not None and not user.is_bot:
            row = await store.upsert_user(session, user)
            context.locale = i18n.negotiate(user.language_code, row.locale)
            await session.flush()
        await store.record_event(session, update.update_id, user.id if user else None, chat.id if chat else None,
                                 kind, detail)
        await session.commit()


async def on_error(update: object, context: BotContext) -> None:
    """Log, record, alert the admins (rate-limited) and apologise; one bad update takes nothing else down."""
    # the update's id only: the whole update carries the user's words, names and files into the log, which
    # /privacy cannot reach (the events row, which it does reach, has the details)
    which = update.update_id if isinstance(update, Update) else type(update).__name__
    log.error("error while handling update %s", which, exc_info=context.error)
    if not isinstance(update, Update):
        return
    try:
        services = context.services
        async with services.sessions() as session:
            await store.mark_event(session, update.update_id, "error", repr(context.error)[:256])
            event_id = await store.event_id(session, update.update_id)
            await session.commit()
        await services.alerts.send(context.bot, f"⚠ Error in update {update.update_id} (event #{event_id}): "
                                                f"{context.error!r}")
        if update.effective_chat is not None:
            _ = context.tr
            await context.bot.send_message(update.effective_chat.id,
                                           _("😕 Sorry, something went wrong on my side. Please try again."))
    except Exception:  # the apology itself failed (network, blocked bot): logging is all we can do
        log.exception("error handler failed")


async def mark(update: Update, context: BotContext, outcome: str, reason: str | None = None,
               job_id: int | None = None) -> None:
    async with context.services.sessions() as session:
        await store.mark_event(session, update.update_id, outcome, reason, job_id)
        await session.commit()


async def reply(update: Update, context: BotContext, text: str, reply_markup=None,
                quote: int | None = None) -> Message | None:
    chat = update.effective_chat
    if chat is None:
        return None
    return await context.bot.send_message(chat.id, text, reply_markup=reply_markup, reply_parameters=quoting(quote))


async def answer(update: Update, text: str | None = None) -> None:
    query = update.callback_query
    if query is not None:
        try:
            await query.answer(text)
        except TelegramError as exc:  # too old a query, network: the user only misses a toast
            log.debug("answerCallbackQuery failed: %s", exc)


async def refuse(update: Update, context: BotContext, reason: str, text: str) -> None:
    """Decline politely, and record why in ``events``."""
    await mark(update, context, "rejected", reason)
    if update.callback_query is not None:
        await answer(update)
    await reply(update, context, text)


async def current_user(update: Update, context: BotContext) -> User:
    async with context.services.sessions() as session:
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
    return params


async def inputs_of(context: BotContext, image: StoredImage) -> list[int]:
    """The pictures a style applies to: the image's album when it came in one, else just the image."""
    if image.album_id is None:
        return [image.id]
    async with context.services.sessions() as session:
        return [i.id for i in await store.album_images(session, image.album_id)] or [image.id]


async def submit(update: Update, context: BotContext, spec: JobSpec) -> Job | None:
    spec.locale = spec.locale or context.locale
    spec.update_id = update.update_id
    try:
        job = await context.runner.accept(spec)
    except Refused as exc:
        await refuse(update, context, "limit", str(exc))
        return None
    await mark(update, context, "accepted", job_id=job.id)
    await answer(update, context.tr("Queued ✔"))
    return job
