"""Errors as RFC 9457 ``application/problem+json``, each kind with a stable ``type`` URI clients may switch on.

A view raises :class:`Problem`; the middleware in :mod:`.app` turns it (and aiohttp's own 404/405/413) into the
document, and any other exception into a logged 500 that names no internals.
"""

from __future__ import annotations

import json

from aiohttp import web

CONTENT_TYPE = "application/problem+json"
#: the kinds of error, ``type`` URIs relative to this service (stable: clients may switch on them)
TITLES = {
    "malformed": "Malformed request",
    "unauthorized": "Missing or invalid credentials",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "too-large": "Request body too large",
    "unsupported-media": "Not a picture or clip we can read",
    "unprocessable": "Request cannot be processed",
    "idempotency-conflict": "Idempotency-Key reused with another request",
    "rate-limited": "Too many requests",
    "busy": "Too busy",
    "not-ready": "Not ready",
    "internal": "Internal error",
}


class Problem(Exception):
    """An error answer: HTTP ``status``, a ``kind`` from :data:`TITLES`, a human ``detail``, extra members."""

    def __init__(self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: object) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers, self.extra = status, kind, detail, headers or {}, extra

    def response(self, instance: str | None = None) -> web.Response:
        body = {"type": f"/problems/{self.kind}", "title": TITLES[self.kind], "status": self.status,
                "detail": self.detail, **({"instance": instance} if instance else {}), **self.extra}
        return web.Response(status=self.status, text=json.dumps(body), content_type=CONTENT_TYPE,
                            headers=self.headers)
