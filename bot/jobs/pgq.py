"""The production queue engine: pgqueuer on the bot's own PostgreSQL.

Why pgqueuer (pinned in pyproject): the queue is a table beside our rows, so a web replica writes the
job row and its queue entry in *one* transaction (a job is never queued without its row, nor a row
without its queue entry); workers claim entries with ``FOR UPDATE SKIP LOCKED`` and heartbeat them,
and an entry whose heartbeat goes stale (a SIGKILLed worker) is claimed again however long the job
had been running. No broker to run besides the database (Celery/Redis would add visibility-timeout
re-runs of long jobs and prefetch to tune).
"""

from __future__ import annotations

from pgqueuer.queries import Queries
from sqlalchemy.ext.asyncio import AsyncSession

#: pgqueuer entrypoint of a stylization job; the payload is the ``jobs.id``.
ENTRYPOINT = "stylize"


async def enqueue(session: AsyncSession, job_id: int, slow: bool = False) -> None:
    """Queue ``job_id`` inside ``session``'s transaction (it commits, or rolls back, with the job row).

    pgqueuer is given the asyncpg connection under the session, so its INSERT is part of our transaction.
    Slow (high-quality) jobs get a lower priority: quick ones overtake them in the queue.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await Queries.from_asyncpg_connection(raw.driver_connection).enqueue(  # type: ignore[arg-type]
        ENTRYPOINT, str(job_id).encode(), priority=0 if slow else 10)


def payload_job_id(payload: bytes | None) -> int:
    return int((payload or b"0").decode())
