"""The bot's long-lived, shared state below the handlers: settings, database, stylizer, preset list.

Built once by :func:`bot.app.build_application` and reached from handlers as ``context.services``
(:mod:`bot.telegram.context`). What a front end may know about the methods comes from the stylizer's own
metadata (:class:`stylizer.facade.MethodInfo`): the bot never names a method.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stylizer.device import resolve_device
from stylizer.facade import MethodInfo, Stylizer
from stylizer.manifest import MANIFEST_NAME, Manifest

from . import store, trained
from .alerts import AdminAlerts
from .config import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    stylizer: Stylizer = field(init=False)
    methods: dict[str, MethodInfo] = field(default_factory=dict)  # the available ones, in preference order
    alerts: AdminAlerts = field(init=False)
    #: full decodes of incoming pictures at once in this process: a 200 KB PNG can claim 7000x7000 px and cost
    #: ~0.8 GB to decode, so 32 users sending one each must queue here, not take 25 GB
    decodes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    #: Telegram's file_id of each thumbnail already sent (by path and mtime): galleries re-send ids, not bytes
    thumbnail_ids: dict[tuple[str, float], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the trained presets' :func:`bot.trained.version` this process installed (None: not yet)
    _presets_version: tuple | None = None

    def __post_init__(self) -> None:
        self.stylizer = Stylizer(self.build_manifest())
        self.alerts = AdminAlerts(self.settings.admin_ids, self.settings.alert_interval)

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

    async def reload_presets(self, mirror: bool = True) -> None:
        """Install the database's trained presets here (:mod:`bot.trained`), re-read the manifests and, with
        ``mirror``, mirror them into the DB (front ends do; workers only read)."""
        async with self._reloading:
            async with self.sessions() as session:
                if mirror and await trained.adopt_local(session, self.settings.presets_dir):
                    await session.commit()
                self._presets_version = await trained.version(session)
                await trained.install(session, self.settings.presets_dir)
            with self._lock:
                self.stylizer = Stylizer(self.build_manifest())
            self.methods = self.stylizer.method_info()
            for attempt in range(3 if mirror else 0):  # replicas starting together insert the same rows: sync again
                async with self.sessions() as session:
                    await store.sync_presets(session, self.stylizer.manifest, self.settings.presets_dir)
                    try:
                        await session.commit()
                        break
                    except IntegrityError:
                        await session.rollback()
                        if attempt == 2:
                            raise
        log.info("methods available: %s; presets: %d", ", ".join(self.methods) or "none",
                 len(self.stylizer.manifest.presets))

    async def follow_presets(self, mirror: bool = True) -> bool:
        """Reload when an admin published or deleted a trained preset anywhere; returns whether it did. Every role
        calls it every ``PRESET_SYNC_SECONDS``, and a worker at once when a job names a preset it lacks."""
        async with self.sessions() as session:
            current = await trained.version(session)
        if current == self._presets_version:
            return False
        await self.reload_presets(mirror)
        return True

    async def follow_presets_forever(self, mirror: bool = True) -> None:
        while True:
            await asyncio.sleep(self.settings.preset_sync_seconds)
            try:
                await self.follow_presets(mirror)
            except Exception:  # the database away for a moment: look again next time
                log.exception("following the trained presets failed")

    def is_slow(self, method: str) -> bool:
        info = self.methods.get(method)
        return info is not None and info.slow

    def takes_pictures(self, method: str) -> bool:
        info = self.methods.get(method)
        return info is not None and info.accepts_images

    def own_style_method(self) -> str | None:
        """"Any picture": the first fast method that takes style pictures, else a slow one; None if neither."""
        takers = [m for m in self.methods.values() if m.accepts_images]
        chosen = next((m for m in takers if not m.slow), takers[0] if takers else None)
        return chosen.name if chosen is not None else None

    @property
    def hq_method(self) -> str | None:
        """"High quality": a slow method that takes style pictures."""
        return next((m.name for m in self.methods.values() if m.slow and m.accepts_images), None)

    def preset_style_image(self, name: str | None) -> Path | None:
        """A picture standing for a preset's style (its source painting, else its thumbnail), for the
        methods that take pictures (high quality re-runs, mixing into an own style)."""
        preset = self.stylizer.manifest.presets.get(name or "")
        if preset is None:
            return None
        folder = self.settings.style_images_dir
        if folder is not None and preset.source and (folder / preset.source).is_file():
            return folder / preset.source
        return preset.thumbnail if preset.thumbnail is not None and preset.thumbnail.is_file() else None

    def preset_title(self, name: str | None) -> str:
        preset = self.stylizer.manifest.presets.get(name or "")
        return preset.title if preset is not None else (name or "")
