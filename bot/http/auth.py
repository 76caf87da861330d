"""Who is calling: an API key (``Authorization: Bearer <key>``), a Telegram Mini App user (``Authorization: tma
<initData>``, checked with the bot token), or, when ``API_ANONYMOUS`` allows it, an anonymous caller: the studio
page's browser session (its ``sid`` cookie), else the client's IP address. Each is a ``users`` row
(:mod:`bot.apikeys`), which owns its jobs: another caller asking for them gets 404.

Each caller has its limits (:class:`Limits`): a key's own where an operator set them, else the ``API_*`` settings.
Anonymous callers are told apart by address; behind a proxy listed in ``TRUSTED_PROXIES`` that is the first
address in ``X-Forwarded-For`` (read from the right) that is not one of those proxies."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from .. import apikeys
from ..config import Settings
from ..services import Services
from .problems import Problem

SESSION_COOKIE = "sid"
#: how old a Mini App's initData may be (Telegram's docs: check auth_date)
INIT_DATA_MAX_AGE = 86400


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    jobs_at_once: int  # queued + running
    jobs_per_minute: int  # pictures rendered
    queue_share: float  # of MAX_QUEUE its queued jobs may take

    @classmethod
    def of(cls, settings: Settings, client: object | None = None) -> Limits:
        """``client``'s own limits (an :class:`bot.models.ApiClient`) where set, else the settings'."""
        def pick(name: str, default: float) -> float:
            own = getattr(client, name, None)
            return default if own is None else own

        return cls(int(pick("requests_per_minute", settings.api_requests_per_minute)),
                   int(pick("jobs_at_once", settings.api_jobs_at_once)),
                   int(pick("jobs_per_minute", settings.api_jobs_per_minute)),
                   float(pick("queue_share", settings.api_queue_share)))


@dataclass(frozen=True)
class Caller:
    user_id: int
    kind: str  # key | telegram | anonymous
    label: str  # what rate limits are counted by: key:<id>, tg:<id>, ip:<address>
    name: str
    limits: Limits


@functools.cache
def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(request: web.Request, trusted: str = "") -> str:
    """The caller's address: the peer's, or, when the peer is a trusted proxy, the nearest untrusted hop of
    ``X-Forwarded-For`` (a client can prepend anything to that header, so it is read from the right)."""
    peer = request.remote or "unknown"
    networks = _networks(trusted)
    address = _address(peer)
    if not networks or address is None or not any(address in n for n in networks):
        return peer
    hops = [h for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return peer  # a garbled header: count the proxy, not a made-up client
        if not any(hop_address in n for n in networks):
            return str(hop_address)
    return peer


def check_init_data(init_data: str, bot_token: str, now: float | None = None) -> dict:
    """The fields of a Mini App's ``initData`` when its HMAC-SHA-256 signature is the bot's and it is fresh;
    raises :class:`Problem` (401) otherwise. The check is Telegram's: the data-check string (every field but
    ``hash``, sorted, ``key=value`` lines) signed with HMAC(key=HMAC("WebAppData", bot_token))."""
    fields = dict(parse_qsl(init_data, keep_blank_values=True))
    given = fields.pop("hash", "")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    if not bot_token or not hmac.compare_digest(expected, given.encode("ascii", "replace").decode()):
        raise Problem(401, "unauthorized", "the Mini App's initData is not signed by this bot")
    try:
        age = (now or time.time()) - int(fields.get("auth_date", "0"))
        user = json.loads(fields.get("user", "{}"))
        int(user["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Problem(401, "unauthorized", "the Mini App's initData has no valid user or auth_date") from exc
    if not 0 <= age <= INIT_DATA_MAX_AGE:
        raise Problem(401, "unauthorized", "the Mini App's initData is too old; reopen the studio from the bot")
    return {**fields, "user": user}


async def identify(request: web.Request, services: Services) -> Caller:
    """The caller of ``request``; 401 for bad credentials or, when anonymous use is off, none."""
    settings: Settings = services.settings
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        async with services.sessions() as session:
            client = await apikeys.lookup(session, credentials.strip())
        if client is None:
            raise Problem(401, "unauthorized", "unknown or revoked API key",
                          headers={"WWW-Authenticate": 'Bearer realm="stylebot"'})
        return Caller(apikeys.key_user_id(client.id), "key", f"key:{client.id}", client.name,
                      Limits.of(settings, client))
    if scheme == "tma" and credentials.strip():
        data = check_init_data(credentials.strip(), settings.bot_token)
        user = data["user"]
        return Caller(int(user["id"]), "telegram", f"tg:{user['id']}", str(user.get("first_name", "")),
                      Limits.of(settings))
    if header:
        raise Problem(401, "unauthorized", "use Authorization: Bearer <API key> (or no Authorization header)",
                      headers={"WWW-Authenticate": 'Bearer realm="stylebot"'})
    if not settings.api_anonymous:
        raise Problem(401, "unauthorized", "an API key is required (Authorization: Bearer <key>)",
                      headers={"WWW-Authenticate": 'Bearer realm="stylebot"'})
    sid = request.cookies.get(SESSION_COOKIE, "")
    ip = client_ip(request, settings.trusted_proxies)
    identity = f"sid:{sid}" if 16 <= len(sid) <= 64 and sid.isalnum() else f"ip:{ip}"
    return Caller(apikeys.anonymous_user_id(identity), "anonymous", f"ip:{ip}", "anonymous", Limits.of(settings))
