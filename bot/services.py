"""The bot's long-lived objects in one place, reachable from every handler via ``bot_data``.

Handlers stay plain functions; what they share (settings, database, stylizer, job runner, trainer)
is built once by :func:`bot.app.build_application` and fetched with :func:`get_services`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import ContextTypes

from stylizer.device import resolve_device
from stylizer.facade import Stylizer
from stylizer.manifest import MANIFEST_NAME, Manifest

from . import store
from .config import Settings

if TYPE_CHECKING:
    from .jobs import JobRunner
    from .training import Trainer

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    stylizer: Stylizer = field(init=False)
    methods: list[str] = field(default_factory=list)
    runner: JobRunner | None = None
    trainer: Trainer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.stylizer = Stylizer(self.build_manifest())

    @property
    def trained_manifest(self) -> Path:
        return self.settings.presets_dir / MANIFEST_NAME

    def build_manifest(self) -> Manifest:
        """Shipped presets (plus STYLIZER_EXTRA_MANIFESTS), then the admins' trained ones on top."""
        return Manifest([*Manifest.default().files, self.trained_manifest])

    @property
    def device(self) -> str:
        try:
            return str(resolve_device(self.settings.stylizer_device))
        except Exception:  # a bad STYLIZER_DEVICE is reported when a job runs
            return self.settings.stylizer_device

    async def reload_presets(self) -> None:
        """Re-read the manifests (after publishing or deleting a preset) and mirror them into the DB."""
        with self._lock:
            self.stylizer = Stylizer(self.build_manifest())
        self.methods = self.stylizer.methods()
        async with self.sessions() as session:
            await store.sync_presets(session, self.stylizer.manifest, self.settings.presets_dir)
            await session.commit()
        log.info("methods available: %s; presets: %d", ", ".join(self.methods) or "none",
                 len(self.stylizer.manifest.presets))

    def own_style_method(self) -> str | None:
        """AdaIN when its decoder is trained, else Gatys; None when neither can run."""
        for name in ("adain", "gatys"):
            if name in self.methods:
                return name
        return None

    def preset_style_image(self, name: str | None) -> Path | None:
        """A picture standing for a preset's style (its source painting, else its thumbnail) for Gatys re-runs."""
        preset = self.stylizer.manifest.presets.get(name or "")
        if preset is None:
            return None
        folder = self.settings.style_images_dir
        if folder is not None and preset.source and (folder / preset.source).is_file():
            return folder / preset.source
        return preset.thumbnail if preset.thumbnail is not None and preset.thumbnail.is_file() else None

    @property
    def hq_method(self) -> str | None:
        return "gatys" if "gatys" in self.methods else None


def get_services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]
