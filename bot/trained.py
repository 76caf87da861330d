"""Admin-trained presets in the database, so that every worker and replica has them.

A worker far from the replica that took ``/train`` trains the preset (:mod:`bot.training`); a replica takes the
admin's Publish; the user's job runs on yet another worker. So a trained preset cannot live in one machine's
folder. It is a ``presets`` row (origin ``trained``) with the preset's fields in ``spec`` and its files (weights,
thumbnail) as blobs that never expire (:mod:`bot.blobs`). Each process *installs* them into its own
``DATA_DIR/presets`` (files named by their hash, plus the ``manifest.toml`` the stylizer reads; :func:`install`)
when the set changed (:func:`version`): :meth:`bot.services.Services.follow_presets` looks every
``PRESET_SYNC_SECONDS``, and a job naming a preset its worker lacks looks at once. A draft (trained, not yet
published) holds the same blobs in ``training_runs.draft`` until Publish or Discard.

Nothing here knows a front end: the Telegram trainer and admin commands call it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stylizer.manifest import MANIFEST_NAME, Manifest, Preset, write_preset_manifest

from . import blobs
from .models import PresetRow, TrainingRun, utcnow

log = logging.getLogger(__name__)

#: where a process keeps its installed copies (under DATA_DIR/presets); drafts train in ``drafts/run<id>``
INSTALLED = "installed"
DRAFTS = "drafts"


def spec_of(preset: Preset) -> dict[str, Any]:
    """A preset's fields without its machine-local paths (those are per process: :func:`install`)."""
    data = asdict(preset)
    data.pop("file"), data.pop("thumbnail")
    data["params"] = dict(preset.params)
    return data


def preset_of(spec: dict[str, Any], file: Path, thumbnail: Path | None) -> Preset:
    return Preset(**{**spec, "file": file, "thumbnail": thumbnail})


async def store_draft(session: AsyncSession, preset: Preset) -> dict[str, Any]:
    """Put a freshly trained preset's files into blobs; returns the draft (spec and blob ids) for the run row."""
    weights = await blobs.put(session, await asyncio.to_thread(preset.file.read_bytes), "application/octet-stream",
                              None)
    thumb = None
    if preset.thumbnail is not None and preset.thumbnail.is_file():
        thumb = await blobs.put(session, await asyncio.to_thread(preset.thumbnail.read_bytes), "image/jpeg", None)
    return {"spec": spec_of(preset), "weights_blob": weights.id, "thumbnail_blob": thumb.id if thumb else None}


def draft_preset(draft: dict[str, Any]) -> Preset:
    """The draft's preset with placeholder paths (its title and method, for messages)."""
    return preset_of(draft["spec"], Path(draft["spec"]["name"]), None)


async def publish(session: AsyncSession, draft: dict[str, Any]) -> Preset | None:
    """Make a draft a preset for everyone (the caller commits); None when the name is a shipped preset's."""
    spec = draft["spec"]
    row = await session.scalar(select(PresetRow).where(PresetRow.name == spec["name"]))
    if row is not None and row.origin != "trained":
        return None
    if row is None:
        row = PresetRow(name=spec["name"], created_at=utcnow())
        session.add(row)
    elif row.weights_blob_id not in (None, draft["weights_blob"]):  # republished under the same name: old files go
        await blobs.remove(session, [row.weights_blob_id, row.thumbnail_blob_id])
    preset = draft_preset(draft)
    row.display_name, row.method, row.origin = preset.title, preset.method, "trained"
    row.enabled, row.available, row.spec = True, True, spec
    row.weights_blob_id, row.thumbnail_blob_id = draft["weights_blob"], draft["thumbnail_blob"]
    row.updated_at = utcnow()
    return preset


async def discard(session: AsyncSession, draft: dict[str, Any]) -> None:
    """Drop a draft's files (unless a published preset uses them)."""
    used = await session.scalar(select(PresetRow.id).where(PresetRow.weights_blob_id == draft["weights_blob"]))
    if used is None:
        await blobs.remove(session, [draft["weights_blob"], draft.get("thumbnail_blob")])


async def delete(session: AsyncSession, name: str) -> bool:
    """Remove a trained preset everywhere (row and files; every process uninstalls it at its next look)."""
    row = await session.scalar(select(PresetRow).where(PresetRow.name == name, PresetRow.origin == "trained"))
    if row is None:
        return False
    await blobs.remove(session, [row.weights_blob_id, row.thumbnail_blob_id])
    await session.delete(row)
    return True


async def version(session: AsyncSession) -> tuple:
    """Changes whenever a trained preset is published, replaced or deleted (what :func:`install` depends on)."""
    query = select(func.count(PresetRow.id), func.sum(PresetRow.id), func.max(PresetRow.updated_at)).where(
        PresetRow.weights_blob_id.is_not(None))
    return tuple((await session.execute(query)).one())


async def install(session: AsyncSession, folder: Path) -> int:
    """Write the database's trained presets into ``folder`` (DATA_DIR/presets) and its manifest; files this
    process already has (same hash) are kept, those of deleted presets removed. Returns how many presets."""
    rows = list(await session.scalars(select(PresetRow).where(PresetRow.weights_blob_id.is_not(None))
                                      .order_by(PresetRow.id)))
    home = folder / INSTALLED
    presets, keep = [], set()
    for row in rows:
        spec = row.spec or {}
        tag = f"{row.name}-{(spec.get('sha256') or str(row.weights_blob_id))[:12]}"
        file, thumb = home / f"{tag}.safetensors", home / f"{tag}.jpg"
        if not file.is_file():
            data = await blobs.read(session, row.weights_blob_id)  # type: ignore[arg-type]
            if data is None:
                log.warning("trained preset %s has lost its weights; skipped", row.name)
                continue
            await asyncio.to_thread(blobs.write_file, file, data)
        keep.add(file)
        if row.thumbnail_blob_id is not None and not thumb.is_file():
            data = await blobs.read(session, row.thumbnail_blob_id)
            if data is not None:
                await asyncio.to_thread(blobs.write_file, thumb, data)
        keep.add(thumb)
        presets.append(replace(preset_of(spec, file, thumb if thumb.is_file() else None), enabled=True))
    await asyncio.to_thread(write_preset_manifest, folder / MANIFEST_NAME, presets)
    if home.is_dir():
        for path in home.iterdir():
            if path.is_file() and path not in keep and not path.name.endswith(".part"):
                path.unlink(missing_ok=True)
    return len(presets)


async def adopt_local(session: AsyncSession, folder: Path) -> int:
    """Presets trained before they lived in the database (in this machine's ``manifest.toml`` with their files
    beside it, not in ``installed/``; no row, or a row without ``spec``) move into it, so installing does not drop
    them. An installed copy is never adopted: it may belong to a preset just deleted. Returns how many (the caller
    commits)."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return 0
    rows = {row.name: row for row in await session.scalars(select(PresetRow))}
    home = (folder / INSTALLED).resolve()
    adopted = 0
    for preset in Manifest([path]).presets.values():
        row = rows.get(preset.name)
        if (row is not None and (row.origin != "trained" or row.spec is not None)) or not preset.file.is_file() \
                or home in preset.file.resolve().parents:
            continue  # a shipped name, the database's own already, or an installed copy
        if row is None:
            row = PresetRow(name=preset.name, display_name=preset.title, method=preset.method, origin="trained",
                            enabled=preset.enabled, available=True, created_at=utcnow())
            session.add(row)
        draft = await store_draft(session, preset)
        row.spec, row.weights_blob_id, row.thumbnail_blob_id = draft["spec"], draft["weights_blob"], draft[
            "thumbnail_blob"]
        row.updated_at = utcnow()
        adopted += 1
    if adopted:
        log.info("moved %d locally trained preset(s) into the database", adopted)
    return adopted


# --- training runs: claimed by whichever process trains ------------------------------------------------------------

async def claim_run(session: AsyncSession) -> TrainingRun | None:
    """The oldest queued run, now ``running`` and ours (atomic: two workers never take the same run)."""
    while True:
        run_id = await session.scalar(select(TrainingRun.id).where(TrainingRun.status == "queued")
                                      .order_by(TrainingRun.id).limit(1))
        if run_id is None:
            return None
        taken = await session.execute(update(TrainingRun).where(TrainingRun.id == run_id,
                                                                TrainingRun.status == "queued")
                                      .values(status="running", heartbeat_at=utcnow()))
        await session.commit()
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return await session.get(TrainingRun, run_id, populate_existing=True)


async def beat(session: AsyncSession, run_id: int) -> bool:
    """Record that the run's trainer is alive; returns whether an admin asked to cancel it."""
    await session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(heartbeat_at=utcnow()))
    await session.commit()
    return bool(await session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run_id)))


async def requeue(session: AsyncSession, run_id: int) -> None:
    """A running run whose trainer is stopping goes back to ``queued`` (commits)."""
    await session.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
                          .values(status="queued", heartbeat_at=None))
    await session.commit()


async def stale_runs(session: AsyncSession, older_than: float) -> list[TrainingRun]:
    """Running runs whose trainer stopped beating (its process died), now ``failed`` (the caller commits)."""
    cutoff = utcnow().timestamp() - older_than
    runs = [run for run in await session.scalars(select(TrainingRun).where(TrainingRun.status == "running"))
            if run.heartbeat_at is None or run.heartbeat_at.timestamp() < cutoff]
    for run in runs:
        run.status, run.error, run.finished_at = "failed", "interrupted: its trainer stopped", utcnow()
    return runs


async def request_cancel(session: AsyncSession, run_id: int) -> str | None:
    """``cancelled`` (was queued), ``cancelling`` (its trainer stops at its next beat) or None (not running)."""
    run = await session.get(TrainingRun, run_id)
    if run is None or run.status not in ("queued", "running"):
        return None
    if run.status == "queued":
        run.status, run.error, run.finished_at = "cancelled", "cancelled", utcnow()
        await blobs.remove(session, [run.style_blob_id])
        await session.commit()
        return "cancelled"
    run.cancel_requested = True
    await session.commit()
    return "cancelling"


def draft_folder(presets_dir: Path, run_id: int) -> Path:
    return presets_dir / DRAFTS / f"run{run_id}"


def forget_draft_files(presets_dir: Path, run_id: int) -> None:
    shutil.rmtree(draft_folder(presets_dir, run_id), ignore_errors=True)
