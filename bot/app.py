"""Builds the python-telegram-bot ``Application``: services, handlers, start-up and shutdown hooks.

Start-up (``post_init``): migrate the database to head, mirror the presets into it, re-queue the
jobs a previous run left unfinished, start the workers. Shutdown (``post_stop``): stop workers (jobs
they were running stay ``running`` and are redone at the next start), close the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from . import admin, handlers, store
from .config import Settings
from .db import create_engine, migrate, session_factory
from .jobs import JobRunner
from .services import Services, get_services
from .training import Trainer

log = logging.getLogger(__name__)

COMMANDS = [
    ("start", "how it works"),
    ("help", "how it works and the commands"),
    ("styles", "gallery of preset styles"),
    ("history", "your recent results"),
    ("settings", "strength, size, colours"),
    ("cancel", "cancel what is running"),
    ("privacy", "what is stored; delete my data"),
]


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Different users are served concurrently; one user's updates run one at a time, in order.

    A user's messages depend on each other (a photo, then the button under it, then the style picture),
    and serialising them also keeps their database rows free of write races.
    """

    __slots__ = ("_locks",)

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}  # user id -> (lock, [users of it])

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = update.effective_user if isinstance(update, Update) else None
        if user is None:
            await coroutine
            return
        lock, holders = self._locks.setdefault(user.id, (asyncio.Lock(), [0]))
        holders[0] += 1
        try:
            async with lock:
                await coroutine
        finally:
            holders[0] -= 1
            if not holders[0]:  # nobody waiting: forget the lock, so idle users cost no memory
                del self._locks[user.id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def classify(update: Update) -> tuple[str, str | None]:
    """What kind of request this is, for the ``events`` table."""
    if update.callback_query is not None:
        return "callback", update.callback_query.data
    message = update.effective_message
    if message is None:
        return "other", None
    if message.text:
        return ("command" if message.text.startswith("/") else "text"), message.text[:120]
    if message.photo:
        p = message.photo[-1]
        return "photo", f"{p.width}x{p.height} {p.file_size or '?'}B"
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


async def record_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Group -1: every update becomes an ``events`` row (and its sender a ``users`` row) first."""
    services = get_services(context)
    kind, detail = classify(update)
    user, chat = update.effective_user, update.effective_chat
    async with services.sessions() as session:
        if user is not None and not user.is_bot:
            await store.upsert_user(session, user)
            await session.flush()
        await store.record_event(session, update.update_id, user.id if user else None, chat.id if chat else None,
                                 kind, detail)
        await session.commit()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log, record and apologise; never let one bad update take anything else down."""
    log.error("error while handling %s", update, exc_info=context.error)
    if not isinstance(update, Update):
        return
    try:
        services = get_services(context)
        async with services.sessions() as session:
            await store.mark_event(session, update.update_id, "error", repr(context.error)[:256])
            await session.commit()
        if update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id,
                                           "😕 Sorry, something went wrong on my side. Please try again.")
    except Exception:  # the apology itself failed (network, blocked bot): logging is all we can do
        log.exception("error handler failed")


def add_handlers(app: Application) -> None:
    app.add_handler(TypeHandler(Update, record_update), group=-1)
    commands = {
        "start": handlers.cmd_start, "help": handlers.cmd_help, "styles": handlers.cmd_styles,
        "history": handlers.cmd_history, "settings": handlers.cmd_settings, "cancel": handlers.cmd_cancel,
        "privacy": handlers.cmd_privacy, "train": admin.cmd_train, "presets": admin.cmd_presets,
        "stats": admin.cmd_stats,
    }
    for name, callback in commands.items():
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(handlers.on_callback))
    train_caption = filters.CaptionRegex(r"^/train(@\w+)?(\s|$)")
    app.add_handler(MessageHandler((filters.PHOTO | filters.Document.IMAGE) & train_caption, admin.cmd_train))
    app.add_handler(MessageHandler(filters.COMMAND, handlers.on_unknown_command))
    app.add_handler(MessageHandler(filters.PHOTO, handlers.on_photo))
    app.add_handler(MessageHandler(filters.Sticker.ALL, handlers.bad_input("sticker")))
    app.add_handler(MessageHandler(filters.ANIMATION | filters.VIDEO | filters.VIDEO_NOTE | filters.Document.VIDEO,
                                   handlers.on_clip))
    app.add_handler(MessageHandler(filters.VOICE | filters.AUDIO, handlers.bad_input("voice")))
    app.add_handler(MessageHandler(filters.Document.IMAGE, handlers.on_image_document))
    app.add_handler(MessageHandler(filters.Document.ALL, handlers.bad_input("document")))
    app.add_handler(MessageHandler(filters.TEXT, handlers.on_text))
    app.add_handler(MessageHandler(filters.ALL, handlers.bad_input("other")))
    app.add_error_handler(on_error)


async def _post_init(app: Application) -> None:
    services: Services = app.bot_data["services"]
    await migrate(services.engine)
    for folder in (services.settings.images_dir, services.settings.results_dir, services.settings.presets_dir):
        folder.mkdir(parents=True, exist_ok=True)
    await services.reload_presets()
    services.runner = JobRunner(services, app.bot)
    services.trainer = Trainer(services, app.bot)
    await services.trainer.start()
    await services.runner.start()
    try:
        await app.bot.set_my_commands(COMMANDS)
    except Exception as exc:  # cosmetic; a self-hosted or fake API may not support it
        log.info("setMyCommands failed: %s", exc)


async def _post_stop(app: Application) -> None:
    services: Services = app.bot_data["services"]
    if services.trainer is not None:
        await services.trainer.stop()
    if services.runner is not None:
        await services.runner.stop()


async def _post_shutdown(app: Application) -> None:
    await app.bot_data["services"].engine.dispose()


def build_application(settings: Settings) -> Application:
    """The whole bot as an ``Application`` (not started): ``app.run_polling()`` or drive it in tests."""
    if not settings.bot_token:
        raise ValueError("BOT_TOKEN is not set")
    engine = create_engine(settings.database_url)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    builder: ApplicationBuilder = (
        Application.builder()
        .token(settings.bot_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .concurrent_updates(PerUserUpdateProcessor(32))
        .post_init(_post_init)
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
    )
    app = builder.build()
    app.bot_data["services"] = services
    add_handlers(app)
    return app
