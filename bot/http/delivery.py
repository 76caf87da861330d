"""The HTTP API's side of its jobs (:class:`~bot.jobs.origin.Origin`): nobody to message. Progress goes into the
job's row (the events stream of any replica reads it), the result into a blob every replica can serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from .. import blobs
from ..jobs.origin import still_claimed
from ..jobs.render import Rendered
from ..models import Job, JobStatus, StoredImage, utcnow
from ..progress import Live
from ..services import Services

log = logging.getLogger(__name__)
#: the result's media type by file suffix
MEDIA_TYPES = {".png": "image/png", ".mp4": "video/mp4", ".gif": "image/gif"}


def extension(media_type: str) -> str:
    """The file extension a result of ``media_type`` is downloaded or sent with."""
    return {"image/jpeg": "jpg", **{t: s[1:] for s, t in MEDIA_TYPES.items()}}.get(media_type, "bin")


class ApiDelivery:
    name = "api"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.eta: Callable[[int, float | None], float | None] = lambda position, typical: None  # the runner's

    async def fetch(self, image: StoredImage, dest: Path) -> bool:
        return False  # API inputs are blobs, which the runner reads itself; an expired one is gone

    async def accepted(self, job: Job, position: int, eta: float | None) -> None:
        """Nothing to send: the caller got the job object (202) and polls or streams it."""

    async def running(self, job: Job, media: str, live: Live) -> None:
        """Progress into the row, at most every ``PROGRESS_INTERVAL`` (and only when it moved)."""
        written: float | None = None
        while True:
            await asyncio.sleep(self.services.settings.progress_interval)
            fraction = live.progress.fraction if live.progress is not None and live.progress.total else None
            if fraction is not None and fraction != written:
                async with self.services.sessions() as session:
                    row = await session.get(Job, job.id)
                    if row is None or row.status != JobStatus.RUNNING:
                        return
                    row.progress = written = round(min(max(fraction, 0.0), 0.99), 4)
                    await session.commit()

    async def deliver(self, claimed: Job, media: str, rendered: Rendered, elapsed: float) -> None:
        path = rendered.paths[0]
        try:
            data = await asyncio.to_thread(path.read_bytes)
            async with self.services.sessions() as session:
                job = await session.get(Job, claimed.id)
                if job is None or not still_claimed(job, claimed):
                    log.info("job %d: not delivered, the row is no longer this claim", claimed.id)
                    return
                blob = await blobs.put(session, data, MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                                       self.services.settings.result_ttl)
                job.result_blob_id, job.result_path = blob.id, None
                job.timings = {k: round(v, 3) for k, v in rendered.timings.items()}
                job.device = rendered.device or None
                job.status, job.progress, job.finished_at = JobStatus.DONE, 1.0, utcnow()
                await session.commit()
        finally:  # the blob is the result now; this machine's copy goes
            for other in rendered.paths:
                other.unlink(missing_ok=True)

    async def closed(self, job: Job, text: str) -> None:
        """Nothing to send: the row's status and error say it."""

    async def crashed(self, job_id: int, error: BaseException) -> None:
        """Logged by the runner; the job's row says "internal error"."""

    async def waiting_moved(self) -> None:
        """Positions are computed when asked for."""
