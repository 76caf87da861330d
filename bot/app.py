"""Builds the python-telegram-bot ``Application``: services, handlers, start-up and shutdown hooks.

Start-up (``post_init``): migrate the database to head, mirror the presets into it, re-queue the
jobs a previous run left unfinished, start the workers, publish the command menus. Shutdown
(``post_stop``): stop workers (jobs they were running stay ``running`` and are redone at the next
start), close the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Bot, Update
from telegram.ext import AIORateLimiter, Application, BaseUpdateProcessor, CallbackContext

from . import retention
from .config import Settings
from .db import create_engine, migrate, require_head, session_factory
from .http.app import make_http_app, start_site
from .http.delivery import ApiDelivery
from .jobs import JobRunner, Role
from .services import Services
from .telegram import handlers
from .telegram.context import CONTEXT_TYPES
from .telegram.delivery import TelegramDelivery
from .telegram.training import ChatTrainingReports
from .training import Trainer

log = logging.getLogger(__name__)


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


async def _post_init(app: Application) -> None:
    services: Services = app.bot_data["services"]
    role = app.bot_data.get("role", Role.ALL)
    if role is Role.ALL:
        await migrate(services.engine)
    else:
        await require_head(services.engine)
    for folder in (services.settings.images_dir, services.settings.results_dir, services.settings.presets_dir):
        folder.mkdir(parents=True, exist_ok=True)
    await services.reload_presets()
    runner = JobRunner(services, [TelegramDelivery(services, app.bot), ApiDelivery(services)], role)
    app.bot_data["runner"] = runner
    if runner.local_workers:  # this process renders, so it trains too (a front end leaves both to the workers)
        app.bot_data["trainer"] = Trainer(services, ChatTrainingReports(services, app.bot))
        await app.bot_data["trainer"].start()
    await runner.start()
    if role is Role.ALL and services.settings.http_listen:  # the HTTP front end beside polling
        app.bot_data["http"] = await start_site(make_http_app(services, runner, sender(app.bot)),
                                                services.settings.http_listen)
    # this machine's files expire, and those of users who deleted their data go (on every replica)
    app.job_queue.run_repeating(_sweep, interval=services.settings.sweep_interval, first=1.0,  # type: ignore[union-attr]
                                name="retention sweep")
    # presets an admin published or deleted through another replica appear and go here too
    app.job_queue.run_repeating(_follow_presets, interval=services.settings.preset_sync_seconds,  # type: ignore[union-attr]
                                name="follow trained presets")
    await handlers.publish_menus(app, services.settings)


async def _sweep(context: CallbackContext) -> None:
    await retention.sweep(context.application.bot_data["services"])


async def _follow_presets(context: CallbackContext) -> None:
    await context.application.bot_data["services"].follow_presets()


async def _post_stop(app: Application) -> None:
    if "http" in app.bot_data:
        await app.bot_data.pop("http").cleanup()
    for key in ("trainer", "runner"):
        if key in app.bot_data:
            await app.bot_data[key].stop()


async def _post_shutdown(app: Application) -> None:
    await app.bot_data["services"].engine.dispose()


def sender(bot: Bot):  # type: ignore[no-untyped-def]
    """What the HTTP front end uses to put a file into a Mini App user's chat: this bot, as a document."""

    async def send(chat_id: int, data: bytes, filename: str) -> None:
        await bot.send_document(chat_id, document=data, filename=filename)

    return send


def rate_limiter(settings: Settings) -> AIORateLimiter:
    """Telegram's limits for every request of this process: its share (``MESSAGES_PER_SECOND``) of the
    30 messages/s a bot may send overall, 20/min per group; a 429 is waited out (``retry_after``) and
    retried, up to ``RETRIES_ON_429`` times.

    The overall limiter is a leaky bucket; with a one-second bucket, a burst after a pause (a full bucket)
    plus the next second's drip would send twice the share within one second, and Telegram answers 429 and
    pauses everything for ``retry_after``. So the bucket holds a tenth of the share (at least one request)
    and drips the rest: no one-second window ever carries more than the share.
    """
    share = settings.messages_per_second
    burst = max(1.0, share / 10)
    return AIORateLimiter(overall_max_rate=burst, overall_time_period=burst / max(share - burst, 0.1),
                          max_retries=settings.retries_on_429)


def build_application(settings: Settings, webhook: bool = False) -> Application:
    """The whole bot as an ``Application`` (not started): ``app.run_polling()`` or drive it in tests.

    ``webhook=True``: no updater (updates come from :mod:`bot.web`) and no stylization workers in-process.
    """
    if not settings.bot_token:
        raise ValueError("BOT_TOKEN is not set")
    engine = create_engine(settings.database_url)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    builder = Application.builder()
    if webhook:
        builder = builder.updater(None)
    app = (
        builder
        .token(settings.bot_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .context_types(CONTEXT_TYPES)
        .rate_limiter(rate_limiter(settings))
        .concurrent_updates(PerUserUpdateProcessor(32))
        .post_init(_post_init)
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
        .build()
    )
    app.bot_data["services"] = services
    app.bot_data["role"] = Role.FRONT if webhook else Role.ALL
    handlers.register(app)
    return app
