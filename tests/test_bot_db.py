"""The database layer: migrations build exactly the models' schema; settings parse like the docs say."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bot.config import Settings
from bot.db import create_engine as create_async_engine
from bot.db import migrate, ours
from bot.models import Base


async def test_migrations_match_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = create_async_engine(url)
    await migrate(engine)
    await migrate(engine)  # idempotent: a second start-up finds the database at head
    await engine.dispose()
    sync = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with sync.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    sync.dispose()
    assert diff == []
    assert {"users", "images", "albums", "jobs", "presets", "training_runs", "events", "alembic_version"} <= tables


def _diff(conn) -> tuple[list, set[str]]:  # type: ignore[no-untyped-def]
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False,
                                                     "include_name": ours})
    return compare_metadata(context, Base.metadata), set(inspect(conn).get_table_names())


async def test_migrations_match_models_on_postgresql(postgres_url: str) -> None:
    """The same models and migrations on PostgreSQL (asyncpg): upgrade, again (idempotent), compare, downgrade."""
    engine = create_async_engine(postgres_url)
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as conn:
        diff, tables = await conn.run_sync(_diff)
    assert diff == []
    assert {"users", "images", "albums", "jobs", "events", "alembic_version", "pgqueuer", "pgqueuer_log"} <= tables
    await migrate(engine, "base", downgrade=True)  # every migration also goes back down
    async with engine.connect() as conn:
        _, tables = await conn.run_sync(_diff)
    assert tables == {"alembic_version"}
    await engine.dispose()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    monkeypatch.setenv("ADMIN_IDS", "1, 22,333")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATYS_STEPS", "")
    settings = Settings(_env_file=None)
    assert settings.admin_ids == {1, 22, 333} and settings.is_admin(22) and not settings.is_admin(4)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    assert settings.gatys_steps is None and settings.max_upload_bytes == 20 * 1024 * 1024


def test_env_example_lists_every_setting() -> None:
    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    keys = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}
    assert keys == {name.upper() for name in Settings.model_fields}


async def test_a_preset_trained_before_the_database_held_them_moves_in(tmp_path: Path) -> None:
    """Upgrading: a preset an admin trained when presets lived in one machine's DATA_DIR/presets/manifest.toml is
    moved into the database at start, and another machine (its own folder, the same database) then has it."""
    from dataclasses import replace

    from api_helpers import api_settings
    from bot_helpers import picture, rows

    from bot.db import session_factory
    from bot.services import Services
    from stylizer.facade import StyleRef, StylizeRequest
    from stylizer.manifest import Manifest, write_preset_manifest

    shipped = Manifest.default().preset("starry_night")
    first = api_settings(tmp_path / "a")
    first.presets_dir.mkdir(parents=True)
    legacy = replace(shipped, name="legacy_style", display_name="Legacy", file=first.presets_dir / "legacy.safetensors",
                     thumbnail=None)
    legacy.file.write_bytes(shipped.file.read_bytes())
    write_preset_manifest(first.presets_dir / "manifest.toml", [legacy])
    second = api_settings(tmp_path / "b", database_url=first.database_url)
    engine = create_async_engine(first.database_url)
    await migrate(engine)
    try:
        for settings in (first, second):
            services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
            await services.reload_presets()
            assert "legacy_style" in services.stylizer.manifest.presets
            image = tmp_path / "photo.jpg"
            image.write_bytes(picture(64, 48))
            out = services.stylizer.stylize(StylizeRequest(image, [StyleRef(preset="legacy_style")], size=64))
            assert out.image.size == (64, 48)
        assert any((second.presets_dir / "installed").glob("legacy_style-*.safetensors"))
    finally:
        await engine.dispose()
    assert rows(first, "SELECT name, origin FROM presets WHERE spec IS NOT NULL") == [("legacy_style", "trained")]
