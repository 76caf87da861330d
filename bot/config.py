"""All bot configuration in one settings object, read from the environment or ``.env``.

One object (rather than ``os.environ`` lookups scattered through handlers) so that tests can build
a fully isolated bot from keyword arguments and every knob is listed in one place (and in
``.env.example``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PUBLIC_API = "https://api.telegram.org/bot"
PUBLIC_FILE_API = "https://api.telegram.org/file/bot"


class Settings(BaseSettings):
    """Bot settings; environment variable names are the upper-case field names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: str = ""
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    data_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite+aiosqlite file DATA_DIR/bot.db
    telegram_base_url: str = PUBLIC_API
    telegram_base_file_url: str = PUBLIC_FILE_API

    stylizer_device: str = "auto"
    workers: int = Field(2, ge=1, le=32)  # CPU worker threads; a CUDA device always gets one

    # Limits (Telegram's own: getFile <= 20 MB, sendPhoto <= 10 MB and width + height <= 10000).
    max_upload_mb: float = Field(20, gt=0, le=20)
    max_image_side: int = Field(10000, ge=16)
    output_size: int = Field(512, ge=16, le=4096)  # default long side of results
    # Largest result: the full-resolution file of a photo (its own size up to this), larger runs tile by tile.
    max_output_size: int = Field(4096, ge=16, le=4096)
    tile_size: int = Field(1024, ge=0, le=4096)  # long side above which results render in tiles (0: never)
    max_jobs_per_user: int = Field(2, ge=1)  # queued + running at once
    rate_per_minute: int = Field(6, ge=1)  # accepted jobs per user per minute
    max_queue: int = Field(50, ge=1)  # queued jobs overall before new ones are refused
    # Slow (optimisation) jobs cost minutes per megapixel on a CPU: their long side is capped (the full-resolution
    # file of a high-quality result included), a user has at most one at a time, and at most MAX_SLOW_JOBS wait
    # or run at once, so they can never fill every worker.
    max_slow_size: int = Field(1536, ge=64, le=2048)
    max_slow_jobs: int = Field(2, ge=1)
    # Clips (videos, GIF animations, video notes): Telegram's sendVideo takes at most 50 MB.
    max_video_seconds: float = Field(60, gt=0)
    video_size: int = Field(480, ge=64, le=1920)  # long side of stylized clips (video notes: at most 640)
    max_video_output_mb: float = Field(50, gt=0, le=50)

    default_strength: float = Field(1.0, ge=0.25, le=1.0)
    gatys_steps: int | None = Field(None, ge=1)  # None: the method's default
    progress_interval: float = Field(1.5, gt=0)  # seconds between status-message edits
    # A job is silent this long: no "queued" message, no chat action, no progress (a quick photo's only Bot API
    # calls are the button's answer and the photo). 0: announce every job at once.
    quiet_seconds: float = Field(2.0, ge=0, le=30)
    preview_interval: float = Field(8.0, ge=0)  # seconds between Gatys preview updates; 0: no previews
    presets_per_page: int = Field(6, ge=1, le=20)
    sheet_size: int = Field(256, ge=64, le=512)  # long side of each picture on the "all styles" sheet
    album_wait: float = Field(1.5, ge=0)  # seconds to wait for the rest of an album before its menu
    style_wait_minutes: float = Field(10, gt=0)  # how long "send me the style picture" stays open
    alert_interval: float = Field(60, ge=0)  # seconds between error alerts to admins
    history_size: int = Field(5, ge=1, le=20)
    # Folder of the presets' source paintings (manifest field ``source``, e.g. ../shared/data/styles): the style
    # picture of a preset's high-quality re-run; without it the preset's thumbnail is used.
    style_images_dir: Path | None = None

    # Admin preset training.
    train_content_dir: Path | None = None
    train_steps: int | None = Field(None, ge=1)
    train_size: int = Field(256, ge=16)
    sample_image: Path | None = None  # photo rendered to preview a trained preset (default: first of TRAIN_CONTENT_DIR)

    # Webhook mode (`python -m bot web`): Telegram POSTs updates to WEBHOOK_URL, which reaches this process
    # at WEBHOOK_LISTEN (host:port) + the URL's path; requests must carry WEBHOOK_SECRET in
    # X-Telegram-Bot-Api-Secret-Token.
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1:8443"
    webhook_secret: str = ""
    # A webhook update is claimed before it runs; a copy arriving meanwhile is answered 503 (Telegram retries). A
    # claim this old whose update never finished belonged to a replica that died mid-update: it is taken over.
    update_claim_seconds: float = Field(120, ge=1)

    # Production mode (web replicas + `python -m bot worker`, PostgreSQL only). Fast single photos of one style
    # share forward passes: up to BATCH_MAX jobs, waiting at most BATCH_WAIT_MS for each other (1: no batching).
    batch_max: int = Field(8, ge=1, le=64)
    batch_wait_ms: float = Field(20, ge=0, le=2000)
    # A worker's claimed job whose heartbeat is older than this goes to another worker (a dead worker's job).
    heartbeat_timeout: float = Field(30, ge=1)
    #: seconds between looks for presets an admin published or deleted on another replica (bot.trained)
    preset_sync_seconds: float = Field(10, gt=0)
    # This process's share of Telegram's 30 messages/s: 30 / the number of processes that send (web replicas and
    # workers), so that together they stay under it; 429 answers are retried after retry_after.
    messages_per_second: float = Field(30, gt=0, le=30)
    retries_on_429: int = Field(5, ge=0, le=50)

    # The HTTP front end (REST API, MAX contract, docs): `python -m bot` serves it beside polling (alone without a
    # BOT_TOKEN), `python -m bot web` on WEBHOOK_LISTEN beside the webhook. HTTP_LISTEN empty: off.
    http_listen: str = "127.0.0.1:8080"
    api_anonymous: bool = True  # callers without a key may use it (their limits are per IP / browser session)
    api_requests_per_minute: int = Field(120, ge=1)  # per key, and per anonymous IP
    api_jobs_at_once: int = Field(4, ge=1)  # queued + running jobs of one key (or anonymous caller)
    api_jobs_per_minute: int = Field(30, ge=1)  # pictures rendered per minute for one key (or anonymous caller)
    #: the share of MAX_QUEUE one key's (or anonymous caller's) queued jobs may take, so that nobody fills the queue
    api_queue_share: float = Field(0.5, gt=0, le=1)
    #: comma-separated proxy addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) whose X-Forwarded-For is believed:
    #: behind nginx, anonymous callers are then counted by their own address, not the proxy's
    trusted_proxies: str = ""
    result_ttl: float = Field(86400, gt=0)  # seconds an API upload or result is kept
    #: API uploads read and taken in at once per process (each may hold MAX_UPLOAD_MB in memory); others wait
    uploads_at_once: int = Field(4, ge=1)
    cors_origins: str = ""  # comma-separated origins allowed to call the API from a browser ("*": any)
    # The studio's public https URL (e.g. https://your.host/): the bot offers it as its menu button and under the
    # style menu as a Telegram Mini App. Empty: not offered.
    studio_url: str = ""

    # Retention: every file on a machine's disk (inputs, fetched copies, results) is removed after this many hours,
    # and every process sweeps its disk this often (seconds), removing too the files of users who deleted their data.
    file_retention_hours: float = Field(72, gt=0)
    sweep_interval: float = Field(300, gt=0)

    log_level: str = "INFO"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(";", ",").split(",") if part.strip())
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("gatys_steps", "train_steps", "train_content_dir", "sample_image", "style_images_dir",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'bot.db'}"
        self.max_output_size = max(self.max_output_size, self.output_size)
        return self

    @property
    def menu_sizes(self) -> list[int]:
        """Sizes /settings offers for everyday results (photos); the full-resolution button goes beyond."""
        return sorted({self.output_size, *(z for z in (384, 512, 768, 1024, 1280) if z <= self.max_output_size)})

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def presets_dir(self) -> Path:
        return self.data_dir / "presets"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids
