"""Files on this machine's disk expire, and a user who deleted their data leaves nothing behind on *any* machine.

Pictures, fetched copies and results live in per-user folders (``images/<user>/``, ``results/<user>/``) on
whichever machine handled or rendered them: the web replica that took the photo, each worker that fetched it
again by ``file_id``. ``/privacy`` deletes the user's rows (everywhere at once: they are in the shared database)
and this machine's folders at once; every other process finds the folders of users who no longer exist in its
next :func:`sweep` (every ``SWEEP_INTERVAL`` seconds, in every role) and removes them. The same sweep gives every
file a retention period (``FILE_RETENTION_HOURS``): nothing is needed after it, since inputs are fetched again
by ``file_id`` and results re-rendered when a button asks for them. Half-written ``.part`` files of a killed
process go after an hour.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import select

from . import blobs
from .config import Settings
from .models import User
from .services import Services

log = logging.getLogger(__name__)
#: a half-written file (``*.part*``) older than this belonged to a process that died
PARTIAL_SECONDS = 3600


def user_folders(settings: Settings, user_id: int) -> list[Path]:
    """Where this machine keeps files of ``user_id``."""
    return [settings.images_dir / str(user_id), settings.results_dir / str(user_id)]


def forget_user_files(settings: Settings, user_id: int) -> int:
    """Remove every file of ``user_id`` on this machine; returns how many there were."""
    removed = 0
    for folder in user_folders(settings, user_id):
        if folder.is_dir():
            removed += sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _sweep_files(settings: Settings, users: set[int], now: float) -> int:
    expire = now - settings.file_retention_hours * 3600
    removed = 0
    for root in (settings.images_dir, settings.results_dir):
        if not root.is_dir():
            continue
        for folder in root.iterdir():
            if folder.is_dir() and folder.name.isdigit() and int(folder.name) not in users:
                removed += forget_user_files(settings, int(folder.name))
                continue
            for path in [folder] if folder.is_file() else folder.rglob("*"):
                try:
                    mtime = path.stat().st_mtime
                    if path.is_file() and (mtime < expire or (".part" in path.name and mtime < now - PARTIAL_SECONDS)):
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # removed meanwhile (a job finished, another sweep)
                    continue
    return removed


async def sweep(services: Services) -> int:
    """One pass over this machine's files (see the module's docstring), and the database's expired blobs (the HTTP
    API's uploads and results, ``RESULT_TTL``); returns how many files were removed."""
    async with services.sessions() as session:
        users = set(await session.scalars(select(User.id)))
        expired = await blobs.expire(session)
    if expired:
        log.info("retention: removed %d expired blob(s)", expired)
    removed = await asyncio.to_thread(_sweep_files, services.settings, users, time.time())
    if removed:
        log.info("retention: removed %d file(s)", removed)
    return removed


async def sweep_forever(services: Services) -> None:
    """:func:`sweep` every ``SWEEP_INTERVAL`` seconds (the worker role's loop; the bot's roles use its JobQueue)."""
    while True:
        try:
            await sweep(services)
        except Exception:  # a database hiccup: the next pass tries again
            log.exception("retention sweep failed")
        await asyncio.sleep(services.settings.sweep_interval)
