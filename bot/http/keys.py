"""Typed keys of what the HTTP application holds (aiohttp ``AppKey``s)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..jobs import JobRunner
from ..services import Services
from .limits import RequestLimiter

SERVICES = web.AppKey("services", Services)
RUNNER = web.AppKey("runner", JobRunner)
LIMITER = web.AppKey("limiter", RequestLimiter)
OPENAPI = web.AppKey("openapi", dict[str, Any])
#: uploads read and taken in at once (UPLOADS_AT_ONCE): each holds up to MAX_UPLOAD_MB in memory meanwhile
UPLOAD_SLOTS = web.AppKey("upload_slots", asyncio.Semaphore)
#: sends a file into a Telegram user's chat (user id, bytes, file name): given by the roles that run the bot
SENDER = web.AppKey("sender", Callable[[int, bytes, str], Awaitable[Any]])
