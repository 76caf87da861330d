"""Where a job came from, and so what the people behind it see of it: the one interface the job layer calls and
each front end implements (the Telegram bot: messages and buttons; the HTTP API: a stored result and a row that
its events stream reads).

The runner (:mod:`.queue`) owns the job's life (accept, claim, render, cancel, retry); at each step it tells the
job's origin, looked up by ``jobs.origin``. So the job layer never builds a keyboard or sends a message, and a
third front end is one more implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..models import Job, JobStatus, StoredImage
from ..progress import Live
from .render import Rendered


class Origin(Protocol):
    """A front end's side of its jobs (every method is awaited on the runner's event loop)."""

    #: ``jobs.origin`` of the jobs it handles
    name: str
    #: seconds until a job at a queue position is done, given the recent typical run (set by the runner)
    eta: Callable[[int, float | None], float | None]

    async def fetch(self, image: StoredImage, dest: Path) -> bool:
        """Bring an input this machine has not got to ``dest`` (Telegram: ``getFile`` by ``file_id``); False when
        it is gone. Inputs kept as blobs in the database never get here: every process reads those."""
        ...

    async def accepted(self, job: Job, position: int, eta: float | None) -> None:
        """The job is persisted and queued at ``position`` (about ``eta`` seconds to go)."""
        ...

    async def running(self, job: Job, media: str, live: Live) -> None:
        """While the job renders (a task cancelled when it ends): mirror ``live`` progress to its people."""
        ...

    async def deliver(self, claimed: Job, media: str, rendered: Rendered, elapsed: float) -> None:
        """Hand the result over and record the job done, only while its row is still this claim (same owner, same
        attempt, still running); otherwise drop the result's files."""
        ...

    async def closed(self, job: Job, text: str) -> None:
        """The job ended without a result (failed, cancelled); ``text`` says why in the job's language."""
        ...

    async def crashed(self, job_id: int, error: BaseException) -> None:
        """A job broke on our side (a bug): whoever operates this front end hears of it."""
        ...

    async def waiting_moved(self) -> None:
        """Queued jobs moved up (one started or left): positions shown anywhere may be refreshed."""
        ...


def still_claimed(row: Job | None, claimed: Job) -> bool:
    """Whether ``row`` (read now) is still the job a worker claimed: delivery checks this before handing over."""
    return (row is not None and row.status == JobStatus.RUNNING and row.attempts == claimed.attempts
            and (row.user_id, row.chat_id) == (claimed.user_id, claimed.chat_id))
