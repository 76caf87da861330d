"""Thin views: parse, ask the service (:mod:`.stylizations`, the core), answer a model of :mod:`.schemas`."""

from __future__ import annotations

import asyncio
import io
import json
import re

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy import text

from .. import blobs, store
from ..jobs import JobRunner
from ..models import Job, JobStatus
from ..services import Services
from . import schemas, stylizations, uploads
from .auth import Caller, identify
from .delivery import extension
from .keys import LIMITER, OPENAPI, RUNNER, SERVICES
from .problems import Problem

#: the MAX contract's metadata: our own model, our own words
METADATA = schemas.ModelMetadata(
    id="stylebot-fast-style", name="Stylebot fast style transfer",
    description="Paints a picture in the style of one of this service's presets (feed-forward networks trained by "
                "this project; AdaIN, conditional instance norm and per-style nets).",
    type="Image-to-Image Translation",
    license="weights trained by this project; the presets' source pictures and their terms: GET /v1/presets",
    source="/docs")
PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,3})(?:$|[,;\s])")


def answer(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json",
                        headers=headers)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _runner(request: web.Request) -> JobRunner:
    return request.app[RUNNER]


async def _caller(request: web.Request) -> Caller:
    """Who calls, counted against their requests per minute (headers kept for the answer)."""
    caller = await identify(request, _services(request))
    request["ratelimit"] = request.app[LIMITER].take(caller.label, caller.limits.requests_per_minute)
    return caller


# -- service ----------------------------------------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return answer(schemas.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    services = _services(request)
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
            if services.settings.uses_postgres:
                await session.execute(text("SELECT 1 FROM pgqueuer LIMIT 1"))
    except Exception as exc:  # the database (or the queue in it) is not reachable
        raise Problem(503, "not-ready", f"database or queue unreachable: {type(exc).__name__}") from exc
    return answer(schemas.Health(status="ok"))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


# -- catalogue ------------------------------------------------------------------------------------------

async def presets(request: web.Request) -> web.Response:
    await _caller(request)
    services = _services(request)
    async with services.sessions() as session:
        rows = await store.listed_presets(session, services.methods)
    manifest = services.stylizer.manifest
    items = []
    for row in rows:
        preset = manifest.presets.get(row.name)
        if preset is None:
            continue
        thumb = preset.thumbnail is not None and preset.thumbnail.is_file()
        items.append(schemas.PresetInfo(name=row.name, title=preset.title,
                                        kind=str(preset.params.get("kind", "painting")), source=preset.source or None,
                                        thumbnail_url=f"/v1/presets/{row.name}/thumbnail" if thumb else None))
    return answer(schemas.PresetList(items=items), headers=request["ratelimit"])


async def thumbnail(request: web.Request) -> web.Response:
    services = _services(request)
    name = request.match_info["name"]
    async with services.sessions() as session:
        usable = await store.usable_presets(session, [name])
    preset = services.stylizer.manifest.presets.get(name)
    if name not in usable or preset is None or preset.thumbnail is None or not preset.thumbnail.is_file():
        raise Problem(404, "not-found", f"no thumbnail for {name!r}")
    data = await asyncio.to_thread(preset.thumbnail.read_bytes)
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})


async def methods(request: web.Request) -> web.Response:
    await _caller(request)
    services = _services(request)
    with_presets = {p.method for p in services.stylizer.manifest.presets.values()}
    items = [schemas.MethodInfoOut(name=m.name, description=m.description, takes_pictures=m.accepts_images,
                                   presets=m.name in with_presets, mixes_presets=m.mixes_presets, slow=m.slow,
                                   quality=schemas.Quality.high if m.slow else schemas.Quality.quick)
             for m in services.methods.values()]
    return answer(schemas.MethodList(items=items), headers=request["ratelimit"])


# -- stylizations ------------------------------------------------------------------------------------------

async def create(request: web.Request) -> web.Response:
    caller = await _caller(request)
    services, runner = _services(request), _runner(request)
    prefer = PREFER_WAIT.search(request.headers.get("Prefer", ""))
    async with uploads.received(request, services.settings.max_upload_bytes) as form:
        job = await stylizations.create(services, runner, caller, form, request.headers.get("Idempotency-Key"))
        del form  # not held while the request waits for the result
    headers = dict(request["ratelimit"])
    if prefer:
        seconds = min(int(prefer.group(1)), 60)
        job = await stylizations.wait(services, job, seconds)
        headers["Preference-Applied"] = f"wait={seconds}"
    body = await stylizations.view(services, runner, job)
    headers["Location"] = body.links.self
    done = job.status in stylizations.TERMINAL
    return answer(body, 200 if prefer and done else 202, headers)


async def listing(request: web.Request) -> web.Response:
    caller = await _caller(request)
    services, runner = _services(request), _runner(request)
    jobs = await stylizations.recent(services, caller)
    items = [await stylizations.view(services, runner, job) for job in jobs]
    return answer(schemas.StylizationList(items=items), headers=request["ratelimit"])


async def show(request: web.Request) -> web.Response:
    caller = await _caller(request)
    services = _services(request)
    job = await stylizations.find(services, caller, request.match_info["id"])
    return answer(await stylizations.view(services, _runner(request), job), headers=request["ratelimit"])


def _wants(request: web.Request) -> str:
    """png or jpeg: ``?format=`` first, then the Accept header, PNG by default."""
    fmt = request.query.get("format", "").lower()
    if fmt in ("png", "jpeg", "jpg"):
        return "jpeg" if fmt == "jpg" else fmt
    if fmt:
        raise Problem(422, "unprocessable", "format: png or jpeg")
    accept = request.headers.get("Accept", "")
    if "image/jpeg" in accept and "image/png" not in accept:
        return "jpeg"
    return "png"


async def result(request: web.Request) -> web.Response:
    caller = await _caller(request)
    services = _services(request)
    job = await stylizations.find(services, caller, request.match_info["id"])
    if job.status != JobStatus.DONE:
        raise Problem(404, "not-found", f"no result yet: the stylization is {stylizations.STATUS[job.status]}")
    async with services.sessions() as session:
        blob = await blobs.get(session, job.result_blob_id) if job.result_blob_id else None
    if blob is None:
        raise Problem(404, "not-found", "the result has expired")
    data, content_type = blob.data, blob.content_type
    if content_type == "image/png" and _wants(request) == "jpeg":
        data, content_type = await asyncio.to_thread(_to_jpeg, data), "image/jpeg"
    name = f"stylized_{job.public_id}.{extension(content_type)}"
    return web.Response(body=data, content_type=content_type, headers={
        **request["ratelimit"], "Content-Disposition": f'inline; filename="{name}"'})


def _to_jpeg(png: bytes, quality: int = 92) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``position`` while queued, ``progress`` while running, ``done`` with the job at the end
    (read from the job's row, so any replica streams any job)."""
    caller = await _caller(request)
    services, runner = _services(request), _runner(request)
    job = await stylizations.find(services, caller, request.match_info["id"])
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                         "X-Accel-Buffering": "no", **request["ratelimit"]})
    await stream.prepare(request)
    last: tuple | None = None
    quiet = 0.0
    while True:
        async with services.sessions() as session:
            row = await session.get(Job, job.id)
        if row is None:
            await stream.write(b'event: done\ndata: {"status": "cancelled"}\n\n')
            break
        body = await stylizations.view(services, runner, row)
        if row.status in stylizations.TERMINAL:
            await stream.write(f"event: done\ndata: {body.model_dump_json()}\n\n".encode())
            break
        state = (body.status, body.position, body.progress)
        if state != last:
            kind = "position" if body.status == "queued" else "progress"
            payload = {"status": body.status.value, "position": body.position, "progress": body.progress,
                       "eta_s": body.eta_s}
            await stream.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
            last, quiet = state, 0.0
        elif quiet > 15:
            await stream.write(b": keep-alive\n\n")
            quiet = 0.0
        await asyncio.sleep(0.25)
        quiet += 0.25
    await stream.write_eof()
    return stream


async def delete(request: web.Request) -> web.Response:
    caller = await _caller(request)
    services = _services(request)
    job = await stylizations.find(services, caller, request.match_info["id"])
    await stylizations.forget(services, _runner(request), job)
    return web.Response(status=204, headers=request["ratelimit"])


# -- the MAX contract --------------------------------------------------------------------------------------

async def max_metadata(request: web.Request) -> web.Response:
    return answer(METADATA)


async def max_predict(request: web.Request) -> web.Response:
    """``POST /model/predict?model=<preset>`` with a multipart ``image``: a JPEG of the input's size (up to the
    output limit). Not a picture: 400, as MAX answers."""
    caller = await _caller(request)
    services, runner = _services(request), _runner(request)
    try:
        query = schemas.PredictQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise Problem(400, "malformed", "model: a preset name (see GET /v1/presets)") from exc
    async with uploads.received(request, services.settings.max_upload_bytes) as form:
        if not form.file("image"):
            raise Problem(400, "malformed", "send the picture as the multipart field `image`")
        form.files = [uploads.Upload("content", u.filename, u.data) for u in form.file("image")]
        try:
            job = await stylizations.create(services, runner, caller, form, None,
                                            max_predict_side=services.settings.max_output_size,
                                            preset_only=query.model)
        except Problem as exc:
            if exc.status == 415:  # MAX: a file that is not a picture is a bad request
                raise Problem(400, "malformed", exc.detail) from exc
            raise
        del form
    job = await stylizations.wait(services, job, 60)
    if job.status != JobStatus.DONE:
        if job.status in stylizations.TERMINAL:
            raise Problem(422, "unprocessable", f"could not stylize it: {job.error or job.status}")
        raise Problem(503, "busy", "still in the queue after 60 s; use POST /v1/stylizations for long work",
                      headers={"Retry-After": "30"})
    async with services.sessions() as session:
        blob = await blobs.get(session, job.result_blob_id) if job.result_blob_id else None
    if blob is None:
        raise Problem(503, "busy", "the result could not be read back; try again")
    data = await asyncio.to_thread(_to_jpeg, blob.data)
    return web.Response(body=data, content_type="image/jpeg", headers=request["ratelimit"])
