"""Engine, sessions and start-up migrations.

Migrations run through Alembic on the application's own async engine (the connection is handed to
``env.py`` via ``config.attributes``), so ``python -m bot`` needs no separate ``alembic upgrade`` step
and tests get exactly the production schema.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: Tables of the queue engine (pgqueuer, PostgreSQL only): created by a migration, but not our models.
QUEUE_TABLE_PREFIX = "pgqueuer"


def ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name``: compare our models only, not the queue engine's tables."""
    return not (type_ == "table" and (name or "").startswith(QUEUE_TABLE_PREFIX))


def alembic_config(url: str) -> Config:
    """An Alembic config built in code (``alembic.ini`` at the root is only for the ``alembic`` CLI)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
    if is_sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class NotMigrated(RuntimeError):
    """The database is behind the code's migrations (``python -m bot migrate`` has not run)."""


async def require_head(engine: AsyncEngine) -> None:
    """Production roles start only on a migrated database: replicas never migrate (two starting together would
    race), ``python -m bot migrate`` does, once per release."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = engine.url.render_as_string(hide_password=False)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    if current != head:
        raise NotMigrated(f"the database is at revision {current}, the code needs {head}: run `python -m bot migrate`")


async def migrate(engine: AsyncEngine, revision: str = "head", downgrade: bool = False) -> None:
    """Bring the database to ``revision`` (start-up and ``python -m bot migrate`` run ``upgrade head``)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        (command.downgrade if downgrade else command.upgrade)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    log.info("database at %s is at revision %s", engine.url.render_as_string(hide_password=True), revision)
