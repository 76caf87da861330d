"""The API's stylization jobs: a form becomes a :class:`~bot.jobs.JobSpec` for the shared runner (same queue,
limits and workers as the bot's), and a job row becomes the :class:`~.schemas.Stylization` the caller sees."""

from __future__ import annotations

import asyncio
import secrets

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import blobs, store
from ..jobs import JobRunner, JobSpec, Refused
from ..models import Job, JobKind, JobStatus, MediaKind, StoredImage
from ..services import Services
from . import schemas, uploads
from .auth import Caller
from .problems import Problem

#: our job statuses as the API names them
STATUS = {JobStatus.QUEUED: "queued", JobStatus.RUNNING: "running", JobStatus.DONE: "succeeded",
          JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}
TERMINAL = {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED}


def parse_form(fields: dict[str, str]) -> schemas.StylizationForm:
    try:
        return schemas.StylizationForm.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "form"
        raise Problem(422, "unprocessable", f"{where}: {first['msg']}",
                      errors=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
                      ) from exc


def _weights(text: str | None, count: int, what: str) -> list[float]:
    if not text:
        return [1.0] * count
    try:
        values = [float(w) for w in text.split(",")]
    except ValueError as exc:
        raise Problem(422, "unprocessable", f"{what}: weights are numbers, comma separated") from exc
    if len(values) != count or any(not 0 < w <= 100 for w in values):
        raise Problem(422, "unprocessable", f"{what}: give {count} weight(s), each above 0")
    return values


def parse_presets(text: str) -> list[tuple[str, float]]:
    """``name`` or ``name:weight,name:weight`` (at most two)."""
    items = []
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError as exc:
            raise Problem(422, "unprocessable", f"preset: {weight!r} is not a weight") from exc
        if not name or not 0 < value <= 100:
            raise Problem(422, "unprocessable", "preset: `name` or `name:weight,name:weight`, weights above 0")
        items.append((name, value))
    if len(items) > 2:
        raise Problem(422, "unprocessable", "preset: at most two styles can be mixed")
    return items


async def create(services: Services, runner: JobRunner, caller: Caller, form: uploads.Form,
                 idempotency_key: str | None, max_predict_side: int | None = None,
                 preset_only: str | None = None) -> Job:
    """Validate ``form``, store its files, and queue the job; returns its row (an existing one for a repeated
    Idempotency-Key with the same request)."""
    settings = services.settings
    digest = form.digest()
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 128 or not idempotency_key.isprintable():
            raise Problem(400, "malformed", "Idempotency-Key: 1 to 128 printable characters")
        existing = await _idempotent(services, caller, idempotency_key, digest)
        if existing is not None:
            return existing
    fields = dict(form.fields)
    if preset_only is not None:
        fields = {"preset": preset_only}
    params = parse_form(fields)
    contents = form.file("content") or form.file("image")
    if len(contents) != 1:
        raise Problem(400 if not contents else 422, "malformed" if not contents else "unprocessable",
                      "send exactly one `content` file (a picture or a clip)")
    unknown = {f.name for f in form.files} - {"content", "image", "style"}
    if unknown:
        raise Problem(422, "unprocessable", f"unknown file field(s): {', '.join(sorted(unknown))}")
    styles = form.file("style")
    if params.preset and styles:
        raise Problem(422, "unprocessable", "give either `preset` or `style` files, not both")
    if not params.preset and not styles:
        raise Problem(422, "unprocessable", "give a `preset` (see GET /v1/presets) or a `style` picture")
    if len(styles) > 2:
        raise Problem(422, "unprocessable", "at most two `style` pictures can be mixed")
    content = await uploads.inspect(contents[0], services, clips=preset_only is None)
    clip = content.kind in MediaKind.CLIPS
    high = params.quality == schemas.Quality.high
    if high and clip:
        raise Problem(422, "unprocessable", "high quality works on pictures, not clips")

    # the method and the style mix, as the bot's menu would choose them
    job_params: dict = {"strength": params.strength, "preserve_color": params.preserve_color,
                        "brush": params.brush.value}
    side = max(content.width, content.height)
    size = params.size or min(settings.output_size if max_predict_side is None else side, max_predict_side or 10**6)
    job_params["size"] = min(size, settings.max_output_size)
    if content.gif:
        job_params["as_gif"] = True
    preset_name: str | None = None
    style_files = []
    if params.preset:
        chosen = parse_presets(params.preset)
        async with services.sessions() as session:
            usable = await store.usable_presets(session, [n for n, _ in chosen])
        for name, _ in chosen:
            preset = services.stylizer.manifest.presets.get(name)
            if name not in usable or preset is None or preset.method not in services.methods:
                raise Problem(422, "unprocessable", f"unknown preset {name!r} (see GET /v1/presets)")
        preset_name = chosen[0][0]
        method = services.stylizer.manifest.presets[preset_name].method
        if len(chosen) == 2:
            other = services.stylizer.manifest.presets[chosen[1][0]]
            info = services.methods.get(method)
            if other.method != method or info is None or not info.mixes_presets:
                raise Problem(422, "unprocessable", f"{chosen[0][0]} and {chosen[1][0]} cannot be mixed")
            job_params["mix"] = {"preset": chosen[1][0], "share": chosen[1][1] / (chosen[0][1] + chosen[1][1])}
        if high:
            picture = services.preset_style_image(preset_name)
            if services.hq_method is None or picture is None or len(chosen) == 2:
                raise Problem(422, "unprocessable", "high quality is not available for this preset")
            method = services.hq_method
            job_params["style_file"] = str(picture)
    else:
        weights = _weights(params.style_weights, len(styles), "style_weights")
        method = services.hq_method if high else services.own_style_method()
        if method is None:
            raise Problem(422, "unprocessable", "styles from pictures are not available on this server")
        if high and len(styles) > 1:
            raise Problem(422, "unprocessable", "high quality takes one style picture")
        for upload in styles:
            style_files.append((upload, await uploads.inspect(upload, services, clips=False)))
        if len(styles) == 2:
            job_params["mix_share"] = weights[1] / (weights[0] + weights[1])

    image = await uploads.store_input(services, caller.user_id, caller.name, contents[0], content)
    style_ids = [(await uploads.store_input(services, caller.user_id, caller.name, u, f)).id for u, f in style_files]
    if len(style_ids) == 2:
        job_params["mix"] = {"style_image_id": style_ids[1], "share": job_params.pop("mix_share")}
    spec = JobSpec(user_id=caller.user_id, chat_id=0, content_image_id=image.id, method=method, params=job_params,
                   style_image_id=style_ids[0] if style_ids else None, preset=preset_name, kind=JobKind.STYLIZE,
                   locale="en", origin="api", public_id=secrets.token_hex(16), idempotency_key=idempotency_key,
                   request_hash=digest, limits=(caller.limits.jobs_at_once, caller.limits.jobs_per_minute),
                   queue_share=caller.limits.queue_share)
    try:
        return await runner.accept(spec)
    except Refused as exc:
        raise Problem(429, "busy", str(exc), headers={"Retry-After": "10"}) from exc
    except IntegrityError:  # the same Idempotency-Key, at the same moment, from another request
        if idempotency_key is not None and (again := await _idempotent(services, caller, idempotency_key, digest)):
            return again
        raise


async def _idempotent(services: Services, caller: Caller, key: str, digest: str) -> Job | None:
    async with services.sessions() as session:
        job = await session.scalar(select(Job).where(Job.user_id == caller.user_id, Job.idempotency_key == key))
    if job is None:
        return None
    if job.request_hash != digest:
        raise Problem(422, "idempotency-conflict", "this Idempotency-Key was used with a different request")
    return job


async def find(services: Services, caller: Caller, public_id: str) -> Job:
    """The caller's job ``public_id``; 404 for anything else (another caller's job included: no existence leak)."""
    if len(public_id) != 32 or not all(c in "0123456789abcdef" for c in public_id):
        raise Problem(404, "not-found", "no such stylization")
    async with services.sessions() as session:
        job = await session.scalar(select(Job).where(Job.public_id == public_id))
    if job is None or job.user_id != caller.user_id or job.origin != "api":
        raise Problem(404, "not-found", "no such stylization")
    return job


async def recent(services: Services, caller: Caller, limit: int = 50) -> list[Job]:
    async with services.sessions() as session:
        query = (select(Job).where(Job.user_id == caller.user_id, Job.origin == "api")
                 .order_by(Job.id.desc()).limit(limit))
        return list(await session.scalars(query))


async def view(services: Services, runner: JobRunner, job: Job) -> schemas.Stylization:
    base = f"/v1/stylizations/{job.public_id}"
    position = eta = None
    async with services.sessions() as session:
        content = await session.get(StoredImage, job.content_image_id)
        if job.status == JobStatus.QUEUED:
            position = await store.queue_position(session, job.id)
            eta = runner.eta(position, await store.typical_run_seconds(session))
        elif job.status == JobStatus.RUNNING:
            typical = await store.typical_run_seconds(session)
            eta = None if typical is None else round(typical * (1 - (job.progress or 0)), 1)
        result = await blobs.get(session, job.result_blob_id) if job.result_blob_id else None
    return schemas.Stylization(
        id=job.public_id or "", status=schemas.JobStatus(STATUS.get(job.status, "failed")), position=position,
        progress=1.0 if job.status == JobStatus.DONE else job.progress, eta_s=eta, created_at=job.queued_at,
        finished_at=job.finished_at, error=None if job.status == JobStatus.DONE else job.error,
        kind="clip" if content is not None and content.is_clip else "picture",
        result_type=result.content_type if result is not None else None,
        links=schemas.Links(self=base, result=f"{base}/result", events=f"{base}/events", cancel=base))


async def wait(services: Services, job: Job, seconds: float) -> Job:
    """The job once it ended, or as it is after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while job.status not in TERMINAL and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        async with services.sessions() as session:
            job = await session.get(Job, job.id) or job
    return job


async def forget(services: Services, runner: JobRunner, job: Job) -> None:
    """Cancel the job if it still runs, and delete it with its result and the inputs no other job uses."""
    if job.status in JobStatus.ACTIVE:
        await runner.cancel(job.id)
    async with services.sessions() as session:
        row = await session.get(Job, job.id)
        if row is None:
            return
        inputs = [row.content_image_id, *([row.style_image_id] if row.style_image_id else [])]
        mix = (row.params or {}).get("mix") or {}
        if mix.get("style_image_id"):
            inputs.append(mix["style_image_id"])
        await blobs.remove(session, [row.result_blob_id])
        await session.delete(row)
        await session.flush()
        for image_id in inputs:
            used = await session.scalar(select(Job.id).where(
                (Job.content_image_id == image_id) | (Job.style_image_id == image_id)).limit(1))
            image = await session.get(StoredImage, image_id)
            if image is not None and used is None:
                await blobs.remove(session, [image.blob_id])
                await session.delete(image)
        await session.commit()
