"""``python -m bot`` without a ``BOT_TOKEN``: the HTTP service alone (REST API, MAX contract, docs).

The same core as the bot's all-in-one role (SQLite by default, migrations at start, in-process workers, the
retention sweep), with the HTTP front end as its only origin, so a newcomer without a token gets a working
service at ``HTTP_LISTEN`` (``bash scripts/run`` prints its URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from . import retention
from .config import Settings
from .db import create_engine, migrate, session_factory
from .http.app import make_http_app, start_site
from .http.delivery import ApiDelivery
from .jobs import JobRunner, Role
from .services import Services

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``)."""
    if not settings.http_listen:
        raise ValueError("HTTP_LISTEN is empty: without BOT_TOKEN the HTTP service is all there is to run")
    engine = create_engine(settings.database_url)
    await migrate(engine)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    for folder in (settings.images_dir, settings.results_dir, settings.presets_dir):
        folder.mkdir(parents=True, exist_ok=True)
    await services.reload_presets()
    runner = JobRunner(services, [ApiDelivery(services)], Role.ALL)
    await runner.start()
    site = await start_site(make_http_app(services, runner), settings.http_listen)
    sweeper = asyncio.create_task(retention.sweep_forever(services))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"Stylebot HTTP service: http://{settings.http_listen}/ (API docs: http://{settings.http_listen}/docs)",
          flush=True)
    try:
        await stop.wait()
    finally:
        sweeper.cancel()  # and wait for it: a sweep cut off mid-query must close its session before the engine goes
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await site.cleanup()
        await runner.stop()
        await engine.dispose()
