"""Bytes kept in the database, where every process reads them: the HTTP API's uploads and results, and the
admins' trained presets (weights, thumbnails, the style pictures they were trained on).

Why the database and not a folder: in production the replica answering ``GET /v1/stylizations/{id}/result`` is
rarely the worker that rendered it, and workers run on other machines; the database is the one store every role
already reaches (PostgreSQL ``bytea`` or a SQLite BLOB), with no object store to run. Results are a few MB and
expire after ``RESULT_TTL``; :func:`expire` removes them (the retention sweep calls it). A trained preset's files
never expire (:data:`FOREVER`): they go when an admin deletes the preset.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Blob, utcnow

#: the expiry of bytes kept until their owner removes them
FOREVER = datetime(9999, 1, 1)


async def put(session: AsyncSession, data: bytes, content_type: str, ttl_seconds: float | None) -> Blob:
    """A new blob (flushed, so it has its id; the caller commits); ``ttl_seconds`` None: kept until removed."""
    now = utcnow()
    expires = FOREVER if ttl_seconds is None else now + timedelta(seconds=ttl_seconds)
    blob = Blob(content_type=content_type, size=len(data), data=data, created_at=now, expires_at=expires)
    session.add(blob)
    await session.flush()
    return blob


async def read(session: AsyncSession, blob_id: int) -> bytes | None:
    return await session.scalar(select(Blob.data).where(Blob.id == blob_id))


async def get(session: AsyncSession, blob_id: int) -> Blob | None:
    return await session.get(Blob, blob_id)


async def remove(session: AsyncSession, ids: list[int | None]) -> None:
    keep = [i for i in ids if i is not None]
    if keep:
        await session.execute(delete(Blob).where(Blob.id.in_(keep)))


async def expire(session: AsyncSession) -> int:
    """Remove the blobs past their time (rows pointing at them keep NULL); returns how many (commits)."""
    gone = await session.execute(delete(Blob).where(Blob.expires_at < utcnow()))
    await session.commit()
    return gone.rowcount or 0  # type: ignore[attr-defined]


def write_file(path: Path, data: bytes) -> None:
    """A blob copied to this machine's disk (atomically: a worker killed mid-write leaves only a ``.part``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
