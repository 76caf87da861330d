"""``python -m bot web``: a stateless webhook front end, one of several behind a load balancer.

Built the way python-telegram-bot's ``customwebhookbot`` example builds one (an ``Application`` without
an ``Updater``, our own small aiohttp server feeding it), because Telegram's delivery contract needs
more than PTB's built-in webhook server gives:

* a request without the right ``X-Telegram-Bot-Api-Secret-Token`` gets 403 and runs nothing;
* 200 only after the update has been processed and its effects committed; a replica killed mid-request
  answers nothing, so Telegram re-delivers the update to another one;
* an update whose effects are already committed (``processed_updates``) is answered 200 without running
  again, so a re-delivery after a late crash is processed once.

No stylization runs here: accepted jobs are persisted (``Role.FRONT``: the row and its pgqueuer entry in one
transaction) for ``python -m bot worker`` processes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from telegram import Update
from telegram.ext import Application

from .app import build_application
from .config import Settings
from .models import ProcessedUpdate, utcnow
from .services import Services

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def make_web_app(application: Application, settings: Settings) -> web.Application:
    services: Services = application.bot_data["services"]
    path = urlsplit(settings.webhook_url).path or "/"
    lock = asyncio.Lock()  # one update at a time per replica keeps a user's updates in order here

    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), settings.webhook_secret):
            return web.Response(status=403, text="wrong secret token")
        try:
            data = await request.json()
            update_id = int(data["update_id"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            return web.Response(status=400, text="not an update")
        async with services.sessions() as session:
            if await session.get(ProcessedUpdate, update_id) is not None:
                return web.Response(text="already processed")
        update = Update.de_json(data, application.bot)
        async with lock:
            await application.process_update(update)  # handler errors go to the error handler, not here
        async with services.sessions() as session:
            session.add(ProcessedUpdate(update_id=update_id, processed_at=utcnow()))
            try:
                await session.commit()
            except IntegrityError:  # another replica finished the same re-delivered update first
                await session.rollback()
        return web.Response(text="ok")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post(path, receive)
    app.router.add_get("/healthz", health)
    return app


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): register the webhook, answer Telegram's POSTs."""
    if not (settings.webhook_url and settings.webhook_secret):
        raise ValueError("WEBHOOK_URL and WEBHOOK_SECRET must be set for the web role")
    application = build_application(settings, webhook=True)
    host, _, port = settings.webhook_listen.rpartition(":")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with application:  # initialize / shutdown
        await application.post_init(application)  # type: ignore[misc]
        await application.start()
        runner = web.AppRunner(make_web_app(application, settings))
        await runner.setup()
        await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
        await application.bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret,
                                          allowed_updates=Update.ALL_TYPES, max_connections=40)
        log.info("webhook front end on %s for %s", settings.webhook_listen, settings.webhook_url)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await application.stop()
            await application.post_stop(application)  # type: ignore[misc]
    await application.post_shutdown(application)  # type: ignore[misc]
