"""``python -m bot worker``: a stylizer worker, one of N on other (GPU) machines, fed through pgqueuer.

It claims jobs that web replicas queued in PostgreSQL (up to ``BATCH_MAX`` at once, so fast ones can
share forward passes), downloads their pictures with ``getFile`` (:meth:`JobRunner._local_copy`),
stylizes (``WORKERS`` threads on a CPU, one job at a time on a GPU), edits the job's status message,
sends the result itself and records it. While a job runs, pgqueuer heartbeats its queue entry from
the event loop (the stylization runs in a thread, so the beats never starve); a worker killed with
SIGKILL stops beating, and after ``HEARTBEAT_TIMEOUT`` another worker claims the job and redoes it.
SIGTERM stops claiming, interrupts running stylizations and hands their jobs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

import asyncpg
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job as QueueJob
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from sqlalchemy.engine import make_url
from telegram.ext import ExtBot

from . import retention
from .app import rate_limiter
from .config import Settings
from .db import create_engine, require_head, session_factory
from .http.delivery import ApiDelivery
from .jobs import JobRunner, Role
from .jobs.pgq import ENTRYPOINT, payload_job_id
from .services import Services
from .telegram.delivery import TelegramDelivery
from .telegram.training import ChatTrainingReports
from .training import Trainer

log = logging.getLogger(__name__)


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN for asyncpg (pgqueuer's own connection)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_queue(runner: JobRunner, connection: asyncpg.Connection) -> QueueManager:
    manager = QueueManager(Queries.from_asyncpg_connection(connection))

    @manager.entrypoint(ENTRYPOINT)
    async def stylize(job: QueueJob) -> None:
        if not await runner.run_job(payload_job_id(job.payload)):
            raise RetryRequested(reason="worker stopping")  # back to the queue for another worker

    return manager


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Take jobs until SIGTERM/SIGINT (or ``stop``)."""
    if not settings.uses_postgres:
        raise ValueError("the worker role needs DATABASE_URL=postgresql+asyncpg://... (the queue lives there)")
    engine = create_engine(settings.database_url)
    await require_head(engine)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    await services.reload_presets(mirror=False)  # the admins' trained presets, from the database
    for folder in (settings.images_dir, settings.results_dir):
        folder.mkdir(parents=True, exist_ok=True)
    bot = ExtBot(settings.bot_token, base_url=settings.telegram_base_url,
                 base_file_url=settings.telegram_base_file_url, rate_limiter=rate_limiter(settings))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        async with bot:
            runner = JobRunner(services, [TelegramDelivery(services, bot), ApiDelivery(services)],
                               Role.WORKER)
            manager = build_queue(runner, connection)
            claim = settings.batch_max

            async def stopper() -> None:
                await stop.wait()
                log.info("stopping: no new jobs; running ones go back to the queue")
                manager.shutdown.set()
                await runner.stop()

            watcher = asyncio.create_task(stopper())
            # admins' /train runs are claimed here, whichever replica queued them
            trainer = Trainer(services, ChatTrainingReports(services, bot))
            await trainer.start()
            background = [asyncio.create_task(retention.sweep_forever(services)),
                          asyncio.create_task(services.follow_presets_forever(mirror=False))]
            log.info("worker on %s: %d at a time, claims up to %d jobs, heartbeat timeout %.0f s",
                     services.device, runner.worker_count, claim, settings.heartbeat_timeout)
            try:
                await manager.run(batch_size=claim, max_concurrent_tasks=2 * claim,
                                  heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout),
                                  dequeue_timeout=timedelta(seconds=10))
            finally:
                watcher.cancel()
                await trainer.stop()
                for task in background:  # and wait for them: a query cut off must close its session before the engine
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        if not connection.is_closed():
            await connection.close()
        await engine.dispose()
