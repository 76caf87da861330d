"""The persistent job queue and its worker pool.

A request becomes a ``jobs`` row (status ``queued``) and is committed *before* the user hears
"queued", so a crash or restart never loses it. Where the job goes then depends on the process's
:class:`Role`:

* ``ALL`` (the embedded ``python -m bot``): an in-process queue; :meth:`JobRunner.start` re-queues
  everything a previous run left queued or running, and asyncio workers take the jobs;
* ``FRONT`` (``python -m bot web``): the row and its pgqueuer entry commit together (:mod:`.pgq`);
  nothing is stylized in the process;
* ``WORKER`` (``python -m bot worker``): pgqueuer hands jobs to :meth:`JobRunner.run_job`; inputs this
  machine has not got are downloaded again with ``getFile``; a cancel pressed on a web replica is seen
  in the job's row.

The heavy stylization runs in a thread (``asyncio.to_thread``) so the event loop keeps answering (and
pgqueuer keeps heartbeating), at most ``WORKERS`` at a time on a CPU and one on a CUDA device (two
jobs would only fight over its memory); fast single photos of one style share forward passes
(:mod:`.batcher`).

What the people behind a job see of it is its origin's business (:mod:`.origin`): the Telegram bot's status
message and result photo, the HTTP API's stored result and event stream. The runner tells the job's origin at
each step and imports no front end.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from stylizer.errors import Cancelled, StylizerError

from .. import blobs, store
from ..i18n import N_, translator
from ..models import Job, JobKind, JobStatus, StoredImage, utcnow
from ..progress import Live
from ..services import Services
from . import pgq
from .batcher import MicroBatcher
from .origin import Origin
from .render import Rendered, Renderer, Work

#: A job whose worker died this many times (say, killed for memory) is failed instead of run again.
MAX_ATTEMPTS = 3


class Role(enum.Enum):
    ALL = "all-in-one"
    FRONT = "web"
    WORKER = "worker"


class Refused(Exception):
    """A request the bot declines (limits); the message is shown to the user as is."""


@dataclass
class JobSpec:
    user_id: int
    chat_id: int
    content_image_id: int
    method: str
    params: dict
    style_image_id: int | None = None
    preset: str | None = None
    parent_id: int | None = None
    kind: str = JobKind.STYLIZE
    inputs: list[int] | None = None  # an album's images (the first is content_image_id)
    reply_to: int | None = None
    locale: str | None = None
    update_id: int | None = None  # the update asking for it (one job per update)
    origin: str = "telegram"  # the front end it came from, which is told what becomes of it (:mod:`.origin`)
    public_id: str | None = None  # the HTTP API's unguessable id
    idempotency_key: str | None = None  # the HTTP API's Idempotency-Key, with the request's hash
    request_hash: str | None = None
    limits: tuple[int, int] | None = None  # (jobs at once, pictures per minute) when not the bot users' settings
    queue_share: float | None = None  # of MAX_QUEUE this caller's queued jobs may take (None: no share of its own)

    @classmethod
    def over(cls, inputs: list[int], **fields: object) -> JobSpec:
        """A job on ``inputs``: one picture, or every photo of an album (then an album job)."""
        album = len(inputs) > 1
        return cls(content_image_id=inputs[0], kind=JobKind.ALBUM if album else JobKind.STYLIZE,
                   inputs=inputs if album else None, **fields)  # type: ignore[arg-type]


log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, services: Services, origins: Iterable[Origin], role: Role = Role.ALL) -> None:
        self.services = services
        self.role = role
        self.settings = services.settings
        self.origins: dict[str, Origin] = {origin.name: origin for origin in origins}
        for origin in self.origins.values():  # one ETA rule, this runner's, wherever a position is shown
            origin.eta = self.eta
        self._slots = asyncio.Semaphore(self.worker_count)
        self.batcher: MicroBatcher[tuple[Work, threading.Event], Rendered | StylizerError] = MicroBatcher(
            self._render_batch, self._slots, self.settings.batch_max, self.settings.batch_wait_ms / 1000)
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._cancels: dict[int, threading.Event] = {}
        self._tasks: list[asyncio.Task] = []
        self._user_cancelled: set[int] = set()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._background: set[asyncio.Task] = set()

    def origin(self, job: Job) -> Origin:
        """The front end a job came from (jobs of a front end this process does not run stay queued)."""
        return self.origins[job.origin]

    @property
    def renderer(self) -> Renderer:
        return Renderer(self.services.stylizer, self.settings)  # the stylizer is replaced when presets reload

    @property
    def local_workers(self) -> bool:
        return self.role is Role.ALL

    @property
    def worker_count(self) -> int:
        """Jobs stylized at once: here (ALL, WORKER), or by one worker elsewhere (FRONT, for ETAs)."""
        if self.role is Role.FRONT:
            return max(1, self.settings.workers)
        return 1 if self.services.device.startswith("cuda") else self.settings.workers

    @property
    def running(self) -> int:
        return len(self._cancels)

    async def start(self) -> None:
        """Re-queue what a previous run left unfinished, then start the workers."""
        if self.role is not Role.ALL:
            log.info("%s: jobs go through the queue in PostgreSQL", self.role.value)
            return
        async with self.services.sessions() as session:
            leftovers = [job for job in await store.active_jobs(session) if job.origin in self.origins]
            for job in leftovers:
                job.status = JobStatus.QUEUED
            await session.commit()
        for job in leftovers:
            self.queue.put_nowait(job.id)
        if leftovers:
            log.info("re-queued %d unfinished job(s) from the previous run", len(leftovers))
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(i), name=f"stylize-worker-{i}")
                       for i in range(self.worker_count)]
        log.info("%d worker(s) on %s", len(self._tasks), self.services.device)

    async def stop(self, grace: float = 15.0) -> None:
        """Stop workers; running jobs stay ``running`` in the database and are redone after a restart.

        Stylizations are interrupted at their next progress report, but a result already being sent is
        allowed to finish (up to ``grace`` seconds), so a clean shutdown does not deliver it twice.
        """
        self._stopping = True
        for event in self._cancels.values():
            event.set()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("workers still busy after %.0f s; stopping them anyway", grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- accepting work ------------------------------------------------------------------------------

    async def accept(self, spec: JobSpec) -> Job:
        """Check the limits, persist the job, then tell the user and queue it; raises :class:`Refused`.

        Called from update handlers, which never run concurrently for one user in one process
        (``PerUserUpdateProcessor``); across web replicas the transaction takes a per-user lock in PostgreSQL, so
        the limit checks and the insert cannot race there either.
        """
        _ = translator(spec.locale)
        async with self.services.sessions() as session:
            await store.lock_user(session, spec.user_id)  # the checks and the insert, one user at a time everywhere
            if spec.update_id is not None and (done := await store.job_for_update(session, spec.update_id)):
                log.info("update %d was re-delivered: its job %d exists", spec.update_id, done.id)
                return done
            at_once, per_minute = spec.limits or (self.settings.max_jobs_per_user, self.settings.rate_per_minute)
            in_flight = len(await store.active_jobs(session, spec.user_id))
            if in_flight >= at_once:
                raise Refused(_.ngettext(
                    "You already have {n} picture in progress. Please wait for it to finish, or /cancel.",
                    "You already have {n} pictures in progress. Please wait for them to finish, or /cancel.",
                    in_flight))
            cost = store.renders(spec.kind, spec.params, spec.inputs)
            if await store.count_recent_jobs(session, spec.user_id) + cost > max(per_minute, cost):
                raise Refused(_("That's a lot of pictures in one minute 🙂 Please wait a little and try again."))
            if len(await store.queued_ids(session)) >= self.settings.max_queue:
                raise Refused(_("I'm very busy right now. Please try again in a few minutes."))
            if spec.queue_share is not None and await store.count_queued(session, spec.user_id) >= max(
                    1, int(spec.queue_share * self.settings.max_queue)):
                raise Refused(_("You have your share of the queue waiting already. Please try again when some of "
                                "it is done."))
            wanted = {name for name in (spec.preset, (spec.params.get("mix") or {}).get("preset")) if name}
            if wanted - await store.usable_presets(session, wanted):  # disabled since the button or link was made
                raise Refused(_("That style is no longer available — please pick another."))
            if self.services.is_slow(spec.method):
                spec.params = self.bounded(spec.method, spec.params)
                slow = [j for j in await store.active_jobs(session) if self.services.is_slow(j.method)]
                if any(j.user_id == spec.user_id for j in slow):
                    raise Refused(_("You already have a high-quality picture in progress. Please wait for it to "
                                    "finish, or /cancel."))
                if len(slow) >= self.settings.max_slow_jobs:
                    raise Refused(_("High quality mode is busy right now. Please try again in a few minutes, "
                                    "or pick a quick style."))
            job = Job(user_id=spec.user_id, chat_id=spec.chat_id, content_image_id=spec.content_image_id,
                      style_image_id=spec.style_image_id, preset=spec.preset, method=spec.method,
                      params=spec.params, parent_id=spec.parent_id, status=JobStatus.QUEUED, kind=spec.kind,
                      inputs=spec.inputs, reply_to=spec.reply_to, locale=spec.locale,
                      queued_at=utcnow(), attempts=0, update_id=spec.update_id, origin=spec.origin,
                      public_id=spec.public_id, idempotency_key=spec.idempotency_key, request_hash=spec.request_hash)
            session.add(job)
            try:
                await session.flush()  # the id, for the queue entry written in the same transaction
            except IntegrityError:  # the same update, re-delivered to another replica at the same moment
                await session.rollback()
                done = await store.job_for_update(session, spec.update_id) if spec.update_id is not None else None
                if done is None:
                    raise
                return done
            if self.role is Role.FRONT:
                await pgq.enqueue(session, job.id, slow=self.services.is_slow(spec.method))
            await session.commit()  # persisted (and queued) before the user is told anything
            position = await store.queue_position(session, job.id)
            eta = self.eta(position, await store.typical_run_seconds(session))
        await self.origin(job).accepted(job, position, eta)
        if self.local_workers:
            await self.queue.put(job.id)
        return job

    def bounded(self, method: str, params: dict) -> dict:
        """``params`` at a bounded cost: a slow method never renders above ``MAX_SLOW_SIZE`` (the full-resolution
        file of a high-quality result included) and runs ``GATYS_STEPS`` when set, whatever front end asked."""
        if not self.services.is_slow(method):
            return params
        size = min(int(params.get("size") or self.settings.output_size), self.settings.max_slow_size)
        steps = {"steps": self.settings.gatys_steps} if self.settings.gatys_steps else {}
        return {**params, "size": size, **steps}

    def eta(self, position: int, typical: float | None) -> float | None:
        """Seconds until a job at ``position`` is done: rounds of WORKERS jobs at the recent median job time."""
        return None if typical is None else -(-position // self.worker_count) * typical

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; True if it was still active."""
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None or job.status not in JobStatus.ACTIVE:
                return False
            event = self._cancels.get(job_id)
            if event is not None:  # running: the worker thread stops at its next progress report
                self._user_cancelled.add(job_id)
                event.set()
                return True
            job.status, job.finished_at, job.error = JobStatus.CANCELLED, utcnow(), "cancelled by user"
            await session.commit()
        if job.origin in self.origins:
            await self.origin(job).closed(job, translator(job.locale)("✖ Cancelled."))
        self._refresh_soon()
        return True

    # -- the workers -----------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        while not self._stopping:
            job_id = await self.queue.get()
            if self._stopping:  # leave it queued in the database for the next start
                self.queue.task_done()
                break
            try:
                await self.run_job(job_id)
            finally:
                self.queue.task_done()

    async def run_job(self, job_id: int) -> bool:
        """Run one job to its end (done, failed, cancelled); False when it was interrupted by :meth:`stop`
        and left to be run again (its row stays ``running``)."""
        self._busy += 1
        self._idle.clear()
        try:
            return await self._process(job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %d crashed", job_id)
            for origin in self.origins.values():
                await origin.crashed(job_id, exc)
            await self._finish(job_id, JobStatus.FAILED, "internal error",
                               N_("😕 Sorry, something went wrong on my side. Please try again."))
            return True
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def _local_copy(self, image: StoredImage | None, origin: Origin) -> Path | None:
        """The picture's file on this machine: where intake stored it, else a copy of its blob (every process reads
        the database), else fetched again by its origin (a worker on another machine, or files lost since) into
        the user's folder; None when gone."""
        if image is None:
            return None
        if image.path and Path(image.path).is_file():
            return Path(image.path)
        suffix = Path(image.path).suffix if image.path else ""
        copy = (self.settings.images_dir / str(image.user_id) / "fetched"
                / f"{store.file_stem(image.file_unique_id)}{suffix or '.jpg'}")
        if copy.is_file():
            return copy
        if image.blob_id is not None:
            async with self.services.sessions() as session:
                data = await blobs.read(session, image.blob_id)
            if data is None:
                return None
            await asyncio.to_thread(blobs.write_file, copy, data)
            return copy
        return copy if await origin.fetch(image, copy) else None

    async def _work(self, job: Job) -> Work | None:
        """The job's inputs as paths; None (job failed) when one is gone."""
        origin = self.origin(job)
        params = self.bounded(job.method, dict(job.params))
        mix = dict(params.get("mix") or {})
        named = {job.preset, mix.get("preset"), *(params.get("presets") or [])} - {None}
        if named - set(self.services.stylizer.manifest.presets):  # published on another replica a moment ago
            await self.services.follow_presets(mirror=self.role is not Role.WORKER)
        async with self.services.sessions() as session:
            ids = job.inputs or [job.content_image_id]
            images = [await session.get(StoredImage, i) for i in ids]
            style = await session.get(StoredImage, job.style_image_id) if job.style_image_id else None
            mixed = await session.get(StoredImage, mix["style_image_id"]) if mix.get("style_image_id") else None
        present = [(image, path) for image in images if image is not None
                   and (path := await self._local_copy(image, origin)) is not None]
        if not present:
            return None
        if style is not None:
            style_path = await self._local_copy(style, origin)
            if style_path is None:
                return None
        else:
            style_path = Path(job.params["style_file"]) if job.params.get("style_file") else None
        if mix.get("style_image_id"):  # a second style picture (the HTTP API's mixes): a path on this machine
            mixed_path = await self._local_copy(mixed, origin)
            if mixed_path is None:
                return None
            params["mix"] = {**mix, "style_file": str(mixed_path)}
        first = present[0][0]
        return Work(job.id, job.user_id, job.kind, [path for _, path in present], first.kind,
                    max(first.width, first.height), job.method, params, job.preset, style_path)

    async def _claim(self, job_id: int) -> Job | None:
        """Mark the job running; None when there is nothing to run (cancelled, deleted, done meanwhile).

        A worker may find it ``running``: pgqueuer hands a job out again only after its previous worker's
        heartbeat stopped, so that worker is dead and the job is ours to redo.
        """
        runnable = {JobStatus.QUEUED, JobStatus.RUNNING} if self.role is Role.WORKER else {JobStatus.QUEUED}
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None or job.status not in runnable:
                return None
            if job.attempts < MAX_ATTEMPTS:
                job.status, job.started_at, job.attempts = JobStatus.RUNNING, utcnow(), job.attempts + 1
                await session.commit()
                return job
        await self._finish(job_id, JobStatus.FAILED, "its workers died",
                           N_("😕 Sorry, something went wrong on my side. Please try again."))
        return None

    async def _process(self, job_id: int) -> bool:
        job = await self._claim(job_id)
        if job is None:
            return True
        work = await self._work(job)
        _ = translator(job.locale)
        if work is None:
            await self._finish(job_id, JobStatus.FAILED, "input image is gone",
                               N_("😕 I no longer have that picture. Please send it again."))
            return True
        cancel = threading.Event()
        self._cancels[job_id] = cancel
        self._refresh_soon()
        live = Live()
        origin = self.origin(job)

        ticker = asyncio.create_task(origin.running(job, work.media, live))
        watcher = asyncio.create_task(self._watch_cancel(job_id, cancel)) if self.role is Role.WORKER else None
        started = time.perf_counter()
        try:
            rendered = await self._render(work, live, cancel)
        except Cancelled:
            if await self._status(job_id) == JobStatus.CANCELLED:
                return True  # cancelled on a web replica, which told the user
            if job_id not in self._user_cancelled:
                return False  # shutting down: stays "running", run again later
            await self._finish(job_id, JobStatus.CANCELLED, "cancelled by user", N_("✖ Cancelled."))
            return True
        except StylizerError as exc:
            log.info("job %d failed: %s", job_id, exc)
            await self._finish(job_id, JobStatus.FAILED, str(exc),
                               _("😕 Sorry, I couldn't stylize this picture: {reason}", reason=exc))
            return True
        finally:
            ticker.cancel()
            if watcher is not None:
                watcher.cancel()
            self._cancels.pop(job_id, None)
            self._user_cancelled.discard(job_id)
        await origin.deliver(job, work.media, rendered, time.perf_counter() - started)
        return True

    async def _render(self, work: Work, live: Live, cancel: threading.Event) -> Rendered:
        """Stylize in a thread: with other jobs of its batch key, or alone (holding a render slot); slow
        methods always alone, with their progress reports."""
        renderer = self.renderer
        batchable = self.settings.batch_max > 1 and not self.services.is_slow(work.method)
        key = renderer.batch_key(work) if batchable else None
        if key is None:
            async with self._slots:
                return await asyncio.to_thread(renderer.render, work, live.update, cancel)
        result = await self.batcher.submit(key, (work, cancel))
        if isinstance(result, StylizerError):
            raise result
        return result

    async def _render_batch(self, items: list[tuple[Work, threading.Event]]) -> list[Rendered | StylizerError]:
        renderer = self.renderer
        if len(items) == 1:  # alone after all: the plain path
            work, cancel = items[0]
            try:
                return [await asyncio.to_thread(renderer.render, work, lambda p: None, cancel)]
            except StylizerError as exc:
                return [exc]
        return await asyncio.to_thread(renderer.render_batch, [w for w, _ in items], [c for _, c in items])

    async def _status(self, job_id: int) -> str | None:
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            return job.status if job is not None else None

    async def _watch_cancel(self, job_id: int, cancel: threading.Event) -> None:
        """A worker's job can be cancelled on any web replica: poll its row, stop the stylization."""
        while not cancel.is_set():
            await asyncio.sleep(self.settings.progress_interval)
            if await self._status(job_id) in (JobStatus.CANCELLED, None):
                cancel.set()

    async def _finish(self, job_id: int, status: str, error: str, text: str) -> None:
        """Close a job that produced no result; ``text`` is an English msgid, translated here."""
        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return
            job.status, job.error, job.finished_at = status, error[:2000], utcnow()
            await session.commit()
        if job.origin in self.origins:
            await self.origin(job).closed(job, translator(job.locale)(text))

    def _refresh_soon(self) -> None:
        """Waiting jobs moved up: each origin may refresh the positions it shows (they throttle it)."""
        for origin in self.origins.values():
            task = asyncio.get_running_loop().create_task(origin.waiting_moved())
            self._background.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._background.discard)
