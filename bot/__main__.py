"""``python -m bot [ROLE]``: configure from the environment / ``.env`` and run one role.

* (none) — all-in-one: polling, in-process workers and the HTTP front end on ``HTTP_LISTEN``, SQLite by default
  (``bash scripts/run``); without ``BOT_TOKEN``, the HTTP front end alone (:mod:`bot.standalone`).
* ``migrate`` — apply the Alembic migrations to ``DATABASE_URL`` (SQLite or PostgreSQL) and exit; needs no token.
* ``web`` — webhook front end (:mod:`bot.web`): ``WEBHOOK_URL``, ``WEBHOOK_LISTEN``, ``WEBHOOK_SECRET``; jobs
  are queued in PostgreSQL for worker processes, nothing is stylized here.
* ``worker`` — stylizer worker (:mod:`bot.worker`): takes the queued jobs, sends the results.
* ``apikey create NAME [rpm=N jobs=N per_minute=N share=F] | list | limits NAME ... | revoke NAME`` — the HTTP API's
  keys (the key is printed once, stored hashed), each with its own limits where set.

``web`` and ``worker`` need ``DATABASE_URL=postgresql+asyncpg://...``: the queue (pgqueuer) lives there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

ROLES = ("migrate", "web", "worker", "apikey")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=ROLES,
                        help="default: the all-in-one bot (the HTTP service alone without a token)")
    parser.add_argument("args", nargs="*", help="apikey: create NAME [rpm=N jobs=N per_minute=N share=F] | list | "
                                               "limits NAME ... | revoke NAME")
    args = parser.parse_args(argv)

    from .config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: bad setting {'.'.join(map(str, first['loc'])).upper()}: {first['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per getUpdates poll otherwise
    if args.role == "migrate":
        return asyncio.run(_migrate(settings.database_url))
    if args.role == "apikey":
        return asyncio.run(_apikey(settings.database_url, args.args))
    if not settings.bot_token and args.role is None and settings.http_listen:  # no bot: the HTTP service alone
        from stylizer.process import keep_freed_memory

        from . import standalone

        keep_freed_memory()
        return _run_role(standalone.serve(settings))
    if not settings.bot_token:
        print("error: BOT_TOKEN is not set (put it in the environment or in .env, see .env.example) and HTTP_LISTEN "
              "is empty: nothing to run", file=sys.stderr)
        return 2

    if args.role in ("web", "worker") and not settings.uses_postgres:
        print(f"error: the {args.role} role needs DATABASE_URL=postgresql+asyncpg://... (the job queue lives in "
              "PostgreSQL; see README, Production)", file=sys.stderr)
        return 2
    if args.role == "web":
        if not (settings.webhook_url and settings.webhook_secret):
            print("error: the web role needs WEBHOOK_URL and WEBHOOK_SECRET (see .env.example)", file=sys.stderr)
            return 2
        from .web import serve

        return _run_role(serve(settings))
    from stylizer.process import keep_freed_memory

    keep_freed_memory()  # the roles that stylize: conv outputs stay in the heap between pictures
    if args.role == "worker":
        from . import worker

        return _run_role(worker.serve(settings))

    from telegram import Update

    from .app import build_application

    app = build_application(settings)
    app.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)
    return 0


def _run_role(main: Coroutine[Any, Any, None]) -> int:
    from .db import NotMigrated

    try:
        asyncio.run(main)
    except NotMigrated as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _apikey(url: str, words: list[str]) -> int:
    """``apikey create NAME [rpm=N jobs=N per_minute=N share=F]`` (the key is the last line printed, shown once),
    ``list``, ``limits NAME rpm=N ...`` (a key's own limits; unset ones follow the API_* settings), ``revoke NAME``."""
    from . import apikeys
    from .db import create_engine, migrate, session_factory

    engine = create_engine(url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            if len(words) >= 2 and words[0] == "create":
                try:
                    client, key = await apikeys.create(session, words[1][:64], apikeys.parse_limits(words[2:]))
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(f"API key for {client.name} (shown once; send it as Authorization: Bearer <key>):")
                print(key)
                return 0
            if words == ["list"]:
                for client in await apikeys.listing(session):
                    state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
                    print(f"{client.id}\t{client.name}\t{state}\tcreated {client.created_at:%Y-%m-%d %H:%M}\t"
                          f"{apikeys.describe_limits(client)}")
                return 0
            if len(words) >= 3 and words[0] == "limits":
                try:
                    changed = await apikeys.set_limits(session, words[1], apikeys.parse_limits(words[2:]))
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                if changed:
                    print(f"{words[1]}: {' '.join(words[2:])}")
                    return 0
                print(f"error: no active key named {words[1]!r}", file=sys.stderr)
                return 2
            if len(words) == 2 and words[0] == "revoke":
                if await apikeys.revoke(session, words[1]):
                    print(f"revoked {words[1]}")
                    return 0
                print(f"error: no active key named {words[1]!r}", file=sys.stderr)
                return 2
    finally:
        await engine.dispose()
    print("usage: python -m bot apikey create NAME [rpm=N jobs=N per_minute=N share=F] | list | "
          "limits NAME rpm=N ... | revoke NAME", file=sys.stderr)
    return 2


async def _migrate(url: str) -> int:
    from .db import create_engine, migrate

    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
