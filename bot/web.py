"""``python -m bot web``: a stateless webhook front end, one of several behind a load balancer.

Built the way python-telegram-bot's ``customwebhookbot`` example builds one (an ``Application`` without
an ``Updater``, our own small aiohttp server feeding it), because Telegram's delivery contract needs
more than PTB's built-in webhook server gives:

* a request without the right ``X-Telegram-Bot-Api-Secret-Token`` gets 403 and runs nothing;
* 200 only after the update has been processed and its effects committed; a replica killed mid-request
  answers nothing, so Telegram re-delivers the update to another one;
* an update is claimed in ``processed_updates`` *before* it runs, so a copy that arrives while the first is still
  in flight (on this replica or another) is answered 503 and retried by Telegram later, and one whose effects are
  committed is answered 200 without running again; a claim whose replica died goes stale after
  ``UPDATE_CLAIM_SECONDS`` and is taken over;
* updates run through the application's update processor: users concurrently, each user's in order (one user's
  20 MB download stalls nobody else).

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
from telegram import Update
from telegram.ext import Application

from . import store
from .app import build_application, sender
from .config import Settings
from .http.app import make_http_app
from .services import Services

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def make_web_app(application: Application, settings: Settings) -> web.Application:
    services: Services = application.bot_data["services"]
    path = urlsplit(settings.webhook_url).path or "/"
    secret = settings.webhook_secret.encode()

    async def receive(request: web.Request) -> web.Response:
        # compared as bytes: a header with characters outside ASCII is a wrong token (403), not a TypeError (500)
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="wrong secret token")
        try:
            data = await request.json()
            update_id = int(data["update_id"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            return web.Response(status=400, text="not an update")
        async with services.sessions() as session:
            claim = await store.claim_update(session, update_id, settings.update_claim_seconds)
        if claim is store.Claim.DONE:
            return web.Response(text="already processed")
        if claim is store.Claim.BUSY:  # the same update is being processed right now (here or on another replica)
            return web.Response(status=503, text="being processed", headers={"Retry-After": "5"})
        try:
            update = Update.de_json(data, application.bot)
            # the application's update processor: users concurrently, each user's updates in order
            await application.update_processor.process_update(update, application.process_update(update))
        except BaseException:
            async with services.sessions() as session:  # let Telegram's re-delivery run it again
                await store.release_update(session, update_id)
            raise
        async with services.sessions() as session:
            await store.finish_update(session, update_id)
        return web.Response(text="ok")

    # the HTTP front end (API, MAX contract, docs) and Telegram's webhook on one port
    app = make_http_app(services, application.bot_data["runner"], sender(application.bot))
    app.router.add_post(path, receive)
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
