"""Database queries the handlers, the job runner and the admin tools share.

Every function takes an open ``AsyncSession`` and leaves committing to the caller, except where the
name says otherwise, so one request can group its writes into one transaction.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stylizer.manifest import Manifest

from .models import (
    Album,
    Blob,
    Event,
    Job,
    JobKind,
    JobStatus,
    PresetRow,
    ProcessedUpdate,
    StoredImage,
    TrainingRun,
    User,
    utcnow,
)


class Person(Protocol):
    """A Telegram user as far as the database cares (``telegram.User`` is one)."""

    id: int
    username: str | None
    first_name: str
    language_code: str | None


async def upsert_user(session: AsyncSession, tg_user: Person) -> User:
    """The user's row, created on first contact and refreshed with their current name."""
    user = await session.get(User, tg_user.id)
    if user is None:
        user = User(id=tg_user.id, preserve_color=False, created_at=utcnow())
        session.add(user)
    user.username = tg_user.username
    user.first_name = (tg_user.first_name or "")[:128]
    user.language = tg_user.language_code
    user.last_seen = utcnow()
    return user


async def record_event(session: AsyncSession, update_id: int, user_id: int | None, chat_id: int | None,
                       kind: str, detail: str | None) -> None:
    session.add(Event(update_id=update_id, user_id=user_id, chat_id=chat_id, kind=kind,
                      detail=(detail or None) and detail[:256], outcome="received"))


async def mark_event(session: AsyncSession, update_id: int, outcome: str, reason: str | None = None,
                     job_id: int | None = None) -> None:
    values: dict[str, object] = {"outcome": outcome, "reason": reason and reason[:256]}
    if job_id is not None:
        values["job_id"] = job_id
    latest = select(func.max(Event.id)).where(Event.update_id == update_id).scalar_subquery()
    await session.execute(update(Event).where(Event.id == latest).values(**values))


def file_stem(file_unique_id: str) -> str:
    """A file name from Telegram's ``file_unique_id`` (or any id a client sends): letters, digits, ``_`` and ``-``
    only, bounded, so no id can climb out of its folder or collide with our own names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", file_unique_id)[:100] or "_"


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Hold one user's lock until the transaction ends (PostgreSQL: an advisory lock), so limit checks and the
    insert that follows them cannot interleave with the same user's request on another replica. SQLite serves one
    process, whose handlers already run one at a time per user."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": user_id})


async def find_image(session: AsyncSession, user_id: int, file_unique_id: str) -> StoredImage | None:
    return await session.scalar(
        select(StoredImage).where(StoredImage.user_id == user_id, StoredImage.file_unique_id == file_unique_id)
    )


async def user_image(session: AsyncSession, user_id: int, image_id: int) -> StoredImage | None:
    image = await session.get(StoredImage, image_id)
    return image if image is not None and image.user_id == user_id else None


async def user_job(session: AsyncSession, user_id: int, job_id: int) -> Job | None:
    job = await session.get(Job, job_id)
    return job if job is not None and job.user_id == user_id else None


async def active_jobs(session: AsyncSession, user_id: int | None = None) -> list[Job]:
    query = select(Job).where(Job.status.in_(JobStatus.ACTIVE)).order_by(Job.id)
    if user_id is not None:
        query = query.where(Job.user_id == user_id)
    return list(await session.scalars(query))


def renders(kind: str, params: dict, inputs: list[int] | None) -> int:
    """How many pictures a job renders: what it costs against the per-minute limit (a sheet of every preset is
    one picture per preset, an album one per photo, not one job)."""
    if kind == JobKind.SHEET:
        return max(1, len(params.get("presets") or []))
    if kind == JobKind.ALBUM:
        return max(1, len(inputs or []))
    return 1


async def count_recent_jobs(session: AsyncSession, user_id: int, seconds: float = 60) -> int:
    """Pictures the user's jobs of the last ``seconds`` render (:func:`renders`)."""
    since = utcnow() - timedelta(seconds=seconds)
    recent = await session.execute(select(Job.kind, Job.params, Job.inputs)
                                   .where(Job.user_id == user_id, Job.queued_at >= since))
    return sum(renders(kind, params or {}, inputs) for kind, params, inputs in recent)


async def claim_album_menu(session: AsyncSession, album_id: int) -> bool:
    """Whether this process sends the album's one menu (commits): its photos may reach several web replicas, each
    with its own timer; the first to mark the row wins."""
    taken = await session.execute(update(Album).where(Album.id == album_id, Album.menu_sent_at.is_(None))
                                  .values(menu_sent_at=utcnow()))
    await session.commit()
    return taken.rowcount == 1  # type: ignore[attr-defined]


async def job_for_update(session: AsyncSession, update_id: int) -> Job | None:
    return await session.scalar(select(Job).where(Job.update_id == update_id))


async def queued_ids(session: AsyncSession) -> list[int]:
    return list(await session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.id)))


async def count_queued(session: AsyncSession, user_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Job).where(
        Job.status == JobStatus.QUEUED, Job.user_id == user_id)) or 0


async def queue_position(session: AsyncSession, job_id: int) -> int:
    """1-based position among waiting jobs (jobs are served in id order)."""
    ahead = await session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED, Job.id < job_id)
    )
    return (ahead or 0) + 1


async def recent_results(session: AsyncSession, user_id: int, limit: int) -> list[Job]:
    query = (select(Job).where(Job.user_id == user_id, Job.status == JobStatus.DONE)
             .order_by(Job.id.desc()).limit(limit))
    return list(await session.scalars(query))


async def sync_presets(session: AsyncSession, manifest: Manifest, trained_dir: Path) -> None:
    """Mirror the manifests' presets into ``presets``; admin toggles (``enabled``) survive restarts."""
    rows = {row.name: row for row in await session.scalars(select(PresetRow))}
    trained_root = trained_dir.resolve()
    for preset in manifest.presets.values():
        origin = "trained" if trained_root in preset.file.resolve().parents else "shipped"
        row = rows.pop(preset.name, None)
        if row is None:
            session.add(PresetRow(name=preset.name, display_name=preset.title, method=preset.method,
                                  origin=origin, enabled=preset.enabled, available=True, created_at=utcnow()))
        else:
            row.display_name, row.method, row.origin, row.available = preset.title, preset.method, origin, True
    for row in rows.values():
        if row.spec is None:  # a trained preset with a spec is the database's own: bot.trained says where it is
            row.available = False


async def listed_presets(session: AsyncSession, methods: Iterable[str]) -> list[PresetRow]:
    """Presets users can pick: enabled by admins, still in a manifest, and their method can run."""
    query = (select(PresetRow).where(PresetRow.enabled.is_(True), PresetRow.available.is_(True),
                                     PresetRow.method.in_(list(methods))).order_by(PresetRow.id))
    return list(await session.scalars(query))


async def usable_presets(session: AsyncSession, names: Iterable[str]) -> set[str]:
    """Which of ``names`` users may run now: enabled by the admins and still in a manifest. Every way to a preset
    (the menu, a deep link, an old result's buttons, a mix) is checked against this when its job is accepted."""
    query = select(PresetRow.name).where(PresetRow.name.in_(list(names)), PresetRow.enabled.is_(True),
                                         PresetRow.available.is_(True))
    return set(await session.scalars(query))


async def all_presets(session: AsyncSession) -> list[PresetRow]:
    return list(await session.scalars(select(PresetRow).where(PresetRow.available.is_(True)).order_by(PresetRow.id)))


async def delete_user_data(session: AsyncSession, user_id: int) -> None:
    """Delete every row about ``user_id``, and the bytes the database keeps for them (the HTTP API's uploads and
    results, a Mini App user's included); their files lie in their own folders (:mod:`bot.retention`)."""
    kept = [*await session.scalars(select(Job.result_blob_id).where(Job.user_id == user_id)),
            *await session.scalars(select(StoredImage.blob_id).where(StoredImage.user_id == user_id))]
    ids = [i for i in kept if i is not None]
    if ids:
        await session.execute(delete(Blob).where(Blob.id.in_(ids)))
    await session.execute(delete(Job).where(Job.user_id == user_id))
    await session.execute(delete(StoredImage).where(StoredImage.user_id == user_id))
    await session.execute(delete(Album).where(Album.user_id == user_id))
    await session.execute(delete(Event).where(Event.user_id == user_id))
    await session.execute(delete(User).where(User.id == user_id))


async def interrupted_training(session: AsyncSession) -> list[TrainingRun]:
    query = select(TrainingRun).where(TrainingRun.status.in_(("queued", "running")))
    return list(await session.scalars(query))


async def album(session: AsyncSession, user_id: int, media_group_id: str) -> tuple[Album, bool]:
    """The user's album for ``media_group_id``, and whether it was created just now."""
    row = await session.scalar(select(Album).where(Album.user_id == user_id, Album.media_group_id == media_group_id))
    if row is not None:
        return row, False
    row = Album(user_id=user_id, media_group_id=media_group_id, created_at=utcnow())
    session.add(row)
    await session.flush()
    return row, True


async def album_images(session: AsyncSession, album_id: int) -> list[StoredImage]:
    return list(await session.scalars(select(StoredImage).where(StoredImage.album_id == album_id)
                                      .order_by(StoredImage.message_id, StoredImage.id)))


async def typical_run_seconds(session: AsyncSession, limit: int = 20) -> float | None:
    """Median time from start to delivery of the last ``limit`` finished jobs (for queue ETAs)."""
    rows = (await session.execute(select(Job.started_at, Job.finished_at).where(
        Job.status == JobStatus.DONE, Job.started_at.is_not(None), Job.finished_at.is_not(None))
        .order_by(Job.id.desc()).limit(limit))).all()
    seconds = sorted((finished - started).total_seconds() for started, finished in rows)
    return seconds[len(seconds) // 2] if seconds else None


async def shareable(session: AsyncSession, user_id: int, limit: int, job_id: int | None = None) -> list[Job]:
    """The user's photo results that Telegram holds (a ``result_file_id``), newest first: inline mode."""
    query = select(Job).where(Job.user_id == user_id, Job.status == JobStatus.DONE, Job.kind == JobKind.STYLIZE,
                              Job.result_file_id.is_not(None), Job.result_path.like("%.png"))
    if job_id is not None:
        query = query.where(Job.id == job_id)
    jobs = await session.scalars(query.order_by(Job.id.desc()).limit(3 * limit))
    return [job for job in jobs if not job.params.get("as_document")][:limit]  # files are documents, not photos


async def event_id(session: AsyncSession, update_id: int) -> int | None:
    return await session.scalar(select(func.max(Event.id)).where(Event.update_id == update_id))


class Claim(enum.Enum):
    """What :func:`claim_update` found: ours to run, already run, or running elsewhere right now."""

    MINE = "mine"
    DONE = "done"
    BUSY = "busy"


async def claim_update(session: AsyncSession, update_id: int, stale_after: float) -> Claim:
    """Claim a webhook update before running it (commits).

    The claim is the row's insert, so of two copies arriving at once exactly one wins (the primary key decides, on
    any replica); a claim older than ``stale_after`` seconds whose update never finished belonged to a replica
    that died mid-update and is taken over (compare-and-set on its ``claimed_at``).
    """
    now = utcnow()
    session.add(ProcessedUpdate(update_id=update_id, claimed_at=now, processed_at=None))
    try:
        await session.commit()
        return Claim.MINE
    except IntegrityError:
        await session.rollback()
    row = await session.get(ProcessedUpdate, update_id)
    if row is None:  # released between our insert and this read: let Telegram try again
        return Claim.BUSY
    if row.processed_at is not None:
        return Claim.DONE
    if row.claimed_at is not None and row.claimed_at > now - timedelta(seconds=stale_after):
        return Claim.BUSY
    taken = await session.execute(
        update(ProcessedUpdate)
        .where(ProcessedUpdate.update_id == update_id, ProcessedUpdate.processed_at.is_(None),
               ProcessedUpdate.claimed_at == row.claimed_at)
        .values(claimed_at=now))
    await session.commit()
    return Claim.MINE if taken.rowcount == 1 else Claim.BUSY  # type: ignore[attr-defined]


async def finish_update(session: AsyncSession, update_id: int) -> None:
    """The claimed update's effects are committed: a re-delivery is now answered without running (commits)."""
    await session.execute(update(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id)
                          .values(processed_at=utcnow()))
    await session.commit()


async def release_update(session: AsyncSession, update_id: int) -> None:
    """Give up an unfinished claim (the update failed before its effects committed), so a re-delivery runs it."""
    await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id,
                                                        ProcessedUpdate.processed_at.is_(None)))
    await session.commit()
