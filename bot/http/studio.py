"""The web studio (``/``, also the bot's Telegram Mini App) and its share pages (``/s/{token}``): static files from
the package, the language from ``Accept-Language``, a browser session cookie for anonymous callers (their recent
results), and the two actions the page adds to the API: a share link, and "send to chat" for Mini App users."""

from __future__ import annotations

import html
import secrets
from importlib import resources
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from .. import blobs
from ..i18n import negotiate
from ..models import Job, JobStatus
from . import stylizations
from .auth import SESSION_COOKIE
from .delivery import extension
from .keys import SENDER, SERVICES
from .problems import Problem
from .views import _caller

FILES = Path(str(resources.files("bot.http") / "studio"))
PAGE = (FILES / "index.html").read_text(encoding="utf-8")
SHARE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<link rel="stylesheet" href="/studio/studio.css"></head><body><main><section>
<h1>{title}</h1><img src="/s/{token}/image" alt="{alt}" style="max-width:100%">
<p><a class="primary" href="/">{own}</a></p></section></main></body></html>"""


def language(request: web.Request) -> str:
    """English or Russian, from the first language of ``Accept-Language`` we speak."""
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip()
        if code:
            return negotiate(code, None)
    return "en"


async def page(request: web.Request) -> web.Response:
    response = web.Response(text=PAGE.replace("{{lang}}", language(request)), content_type="text/html",
                            headers={"Cache-Control": "no-cache"})
    if not request.cookies.get(SESSION_COOKIE):  # this browser's anonymous identity: its jobs are its own
        response.set_cookie(SESSION_COOKIE, secrets.token_hex(16), max_age=365 * 86400, httponly=True,
                            samesite="Lax")
    return response


async def share(request: web.Request) -> web.Response:
    """``POST /v1/stylizations/{id}/share``: a public link to the result (the same one every time)."""
    caller = await _caller(request)
    services = request.app[SERVICES]
    job = await stylizations.find(services, caller, request.match_info["id"])
    if job.status != JobStatus.DONE:
        raise Problem(422, "unprocessable", "only a finished stylization can be shared")
    async with services.sessions() as session:
        row = await session.get(Job, job.id)
        if row is not None and row.share_token is None:
            row.share_token = secrets.token_urlsafe(16)
            await session.commit()
        token = row.share_token if row is not None else None
    if token is None:
        raise Problem(404, "not-found", "no such stylization")
    return web.json_response({"url": f"/s/{token}"}, headers=request["ratelimit"])


async def _shared(request: web.Request) -> Job:
    token = request.match_info["token"]
    if not 8 <= len(token) <= 32:
        raise Problem(404, "not-found", "no such shared picture")
    async with request.app[SERVICES].sessions() as session:
        job = await session.scalar(select(Job).where(Job.share_token == token))
    if job is None or job.result_blob_id is None:
        raise Problem(404, "not-found", "no such shared picture")
    return job


async def shared_page(request: web.Request) -> web.Response:
    job = await _shared(request)
    lang = language(request)
    words = {"en": ("A stylized picture", "Stylized picture", "Make your own"),
             "ru": ("Стилизованная картинка", "Стилизованная картинка", "Сделать своё")}[lang]
    return web.Response(text=SHARE.format(lang=lang, title=words[0], alt=words[1], own=words[2],
                                          token=html.escape(job.share_token or "")), content_type="text/html")


async def shared_image(request: web.Request) -> web.Response:
    job = await _shared(request)
    async with request.app[SERVICES].sessions() as session:
        blob = await blobs.get(session, job.result_blob_id) if job.result_blob_id else None
    if blob is None:
        raise Problem(404, "not-found", "the shared picture has expired")
    return web.Response(body=blob.data, content_type=blob.content_type,
                        headers={"Cache-Control": "public, max-age=3600"})


async def send_to_chat(request: web.Request) -> web.Response:
    """``POST /v1/stylizations/{id}/send``: the result into the Mini App user's chat with the bot (some Telegram
    clients cannot download a file inside a Mini App)."""
    caller = await _caller(request)
    services = request.app[SERVICES]
    job = await stylizations.find(services, caller, request.match_info["id"])
    sender = request.app.get(SENDER)
    if caller.kind != "telegram" or sender is None:
        raise Problem(422, "unprocessable", "sending to a chat works inside the bot's Mini App")
    async with services.sessions() as session:
        blob = await blobs.get(session, job.result_blob_id) if job.result_blob_id else None
    if blob is None:
        raise Problem(404, "not-found", "no result to send")
    await sender(caller.user_id, blob.data, f"stylized_{job.public_id}.{extension(blob.content_type)}")
    return web.json_response({"sent": True}, headers=request["ratelimit"])
