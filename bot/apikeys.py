"""API keys and who an API caller is, as the core sees them (the HTTP front end reads the headers; operators make
keys with ``python -m bot apikey``, admins with ``/apikey`` in the bot).

Every API caller is a ``users`` row, so one set of per-user limits, ownership checks and data deletion covers
both front ends: a Telegram user through the Mini App is their own Telegram id; an API key's holder and an
anonymous caller (a browser session, else an IP address) get ids below zero, where Telegram's never are.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ApiClient, User, utcnow

PREFIX = "sk_"
#: anonymous callers' ids: below every key holder's (-1, -2, ...) and far from Telegram's (positive)
ANONYMOUS_BASE = 2**50


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_user_id(client_id: int) -> int:
    return -client_id


def anonymous_user_id(identity: str) -> int:
    """A stable id for an anonymous caller (``sid:<session>`` or ``ip:<address>``)."""
    return -(ANONYMOUS_BASE + int(hashlib.sha256(identity.encode()).hexdigest()[:12], 16))


#: a key's own limits as ``apikey create NAME rpm=600 jobs=16 per_minute=120 share=0.8`` writes them
LIMIT_WORDS = {"rpm": "requests_per_minute", "jobs": "jobs_at_once", "per_minute": "jobs_per_minute",
               "share": "queue_share"}


def parse_limits(words: list[str]) -> dict[str, float]:
    """``["rpm=600", "share=0.8"]`` -> ApiClient column values; ValueError names what is wrong."""
    out: dict[str, float] = {}
    for word in words:
        key, _, value = word.partition("=")
        if key not in LIMIT_WORDS:
            raise ValueError(f"unknown limit {key!r} (use {', '.join(f'{k}=N' for k in LIMIT_WORDS)})")
        number = float(value) if key == "share" else int(value)
        if number <= 0 or (key == "share" and number > 1):
            raise ValueError(f"{key} must be positive{' and at most 1' if key == 'share' else ''}")
        out[LIMIT_WORDS[key]] = number
    return out


async def create(session: AsyncSession, name: str, limits: dict[str, float] | None = None) -> tuple[ApiClient, str]:
    """A new key for ``name`` with its own ``limits`` (:func:`parse_limits`; commits); the key itself is returned
    once and never stored."""
    if await session.scalar(select(ApiClient).where(ApiClient.name == name)) is not None:
        raise ValueError(f"an API key named {name!r} exists already (revoke it first)")
    key = PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, key_hash=key_hash(key), created_at=utcnow(), **(limits or {}))
    session.add(client)
    await session.flush()
    session.add(User(id=key_user_id(client.id), first_name=f"api:{name}"[:128], preserve_color=False,
                     created_at=utcnow()))
    await session.commit()
    return client, key


async def listing(session: AsyncSession) -> list[ApiClient]:
    return list(await session.scalars(select(ApiClient).order_by(ApiClient.id)))


async def set_limits(session: AsyncSession, name: str, limits: dict[str, float]) -> bool:
    """Change a live key's own limits (commits); False when there is no live key of that name."""
    client = await session.scalar(select(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None)))
    if client is None:
        return False
    for column, value in limits.items():
        setattr(client, column, value)
    await session.commit()
    return True


def describe_limits(client: ApiClient) -> str:
    own = [f"{word}={getattr(client, column):g}" for word, column in LIMIT_WORDS.items()
           if getattr(client, column) is not None]
    return " ".join(own) or "default limits"


async def revoke(session: AsyncSession, name: str) -> bool:
    """Revoke ``name``'s key (commits); False when there is no live key of that name."""
    client = await session.scalar(select(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None)))
    if client is None:
        return False
    client.revoked_at = utcnow()
    await session.commit()
    return True


async def lookup(session: AsyncSession, key: str) -> ApiClient | None:
    """The live client holding ``key``, or None."""
    return await session.scalar(select(ApiClient).where(ApiClient.key_hash == key_hash(key),
                                                        ApiClient.revoked_at.is_(None)))


async def ensure_user(session: AsyncSession, user_id: int, name: str) -> User:
    """The ``users`` row of an API caller (created on first contact; the caller commits)."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id, first_name=name[:128], preserve_color=False, created_at=utcnow())
        session.add(user)
    user.last_seen = utcnow()
    return user
