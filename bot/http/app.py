"""The HTTP front end's application: wiring only (STYLE: ``init_app`` + ``setup_routes``).

:func:`make_http_app` builds it over the core's services and job runner; every role mounts the same one:
``python -m bot`` beside polling (or alone without a token), ``python -m bot web`` beside the webhook.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from ..jobs import JobRunner
from ..services import Services
from . import studio, views
from .keys import LIMITER, OPENAPI, RUNNER, SENDER, SERVICES, UPLOAD_SLOTS
from .limits import RequestLimiter
from .openapi import document
from .problems import Problem

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("bot.http") / "static"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Sender = Callable[[int, bytes, str], Awaitable[Any]]


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", views.healthz)
    r.add_get("/readyz", views.readyz)
    r.add_get("/openapi.json", views.openapi)
    r.add_get("/docs", _docs)
    r.add_get("/docs/init.js", _docs_init)
    try:
        import swagger_ui_bundle

        r.add_static("/docs/static", swagger_ui_bundle.swagger_ui_path)
    except ImportError:  # pragma: no cover - a dependency; /openapi.json still describes the API
        log.warning("swagger-ui-bundle is missing: /docs has no viewer")
    r.add_get("/v1/presets", views.presets)
    r.add_get("/v1/presets/{name}/thumbnail", views.thumbnail)
    r.add_get("/v1/methods", views.methods)
    r.add_post("/v1/stylizations", views.create)
    r.add_get("/v1/stylizations", views.listing)
    r.add_get("/v1/stylizations/{id}", views.show)
    r.add_delete("/v1/stylizations/{id}", views.delete)
    r.add_get("/v1/stylizations/{id}/result", views.result)
    r.add_get("/v1/stylizations/{id}/events", views.events)
    r.add_post("/model/predict", views.max_predict)
    r.add_get("/model/metadata", views.max_metadata)
    r.add_get("/", studio.page)
    r.add_static("/studio", studio.FILES)
    r.add_post("/v1/stylizations/{id}/share", studio.share)
    r.add_post("/v1/stylizations/{id}/send", studio.send_to_chat)
    r.add_get("/s/{token}", studio.shared_page)
    r.add_get("/s/{token}/image", studio.shared_image)


async def _docs(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "docs.html")


async def _docs_init(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "docs-init.js")


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as problem+json: ours, aiohttp's own (404, 405, 413), and anything unforeseen (a logged 500)."""
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(exc.status, "malformed")
        return Problem(exc.status, kind, exc.reason, headers={
            k: v for k, v in exc.headers.items() if k in ("Allow",)}).response(request.path)
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return Problem(500, "internal", "something went wrong on our side").response(request.path)


def cors(origins: str) -> Callable:
    allowed = {o.strip() for o in origins.split(",") if o.strip()}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        ok = bool(origin) and ("*" in allowed or origin in allowed)
        if request.method == "OPTIONS" and ok:
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if ok:
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Idempotency-Key, Prefer"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Expose-Headers"] = "Location, RateLimit, RateLimit-Policy, Retry-After"
        return response

    return middleware


def make_http_app(services: Services, runner: JobRunner, sender: Sender | None = None) -> web.Application:
    """The HTTP front end over ``services`` and ``runner``; ``sender`` (a role that runs the bot gives it) lets the
    studio's Mini App users send a result into their chat."""
    settings = services.settings
    middlewares = [problems, *([cors(settings.cors_origins)] if settings.cors_origins else [])]
    # multipart bodies are streamed and counted by the upload reader (413 at MAX_UPLOAD_MB); this bounds the rest
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_upload_bytes + 2**20)
    app[SERVICES] = services
    app[RUNNER] = runner
    app[LIMITER] = RequestLimiter()
    app[UPLOAD_SLOTS] = asyncio.Semaphore(settings.uploads_at_once)
    app[OPENAPI] = document()
    if sender is not None:
        app[SENDER] = sender
    setup_routes(app)
    return app


async def start_site(app: web.Application, listen: str) -> web.AppRunner:
    """Serve ``app`` on ``host:port``; the caller cleans the returned runner up."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    log.info("HTTP API on http://%s:%s (docs: /docs)", host or "127.0.0.1", port)
    return runner
