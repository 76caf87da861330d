"""SQLAlchemy 2 models: the bot's whole persistent state.

The job queue lives in ``jobs`` (not in memory) so that a restart re-queues every accepted job;
``events`` records every incoming request, including refused ones, so support questions and abuse
can be answered from the database. ``migrations/versions`` must describe exactly these tables
(``tests/test_bot_db.py`` compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .i18n import N_


def utcnow() -> datetime:
    """Naive UTC: SQLite drops time zones, so everything in the database is naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


#: Ids that are never handed out twice. SQLite without AUTOINCREMENT gives a new row the highest *remaining* id + 1,
#: so after one user's /privacy deletion another user's new job could get the id a render or a button still holds
#: (a result sent to the wrong chat, the wrong job cancelled). PostgreSQL's sequences never go back anyway.
#: The tables nothing references by foreign key carry it (migration 0006 rebuilds them); images and albums are
#: parents (rebuilding one would cascade into its children inside the migration's transaction) and every use of
#: their ids checks the owner first (``store.user_image``).
NEVER_REUSED = {"sqlite_autoincrement": True}


class JobStatus:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ACTIVE = (QUEUED, RUNNING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram user id
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str | None] = mapped_column(String(16))
    strength: Mapped[float | None] = mapped_column(Float)  # None: the bot's default
    output_size: Mapped[int | None] = mapped_column(Integer)
    preserve_color: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))  # chosen with /language; None: the app's language
    # "Use my own style": the content image waiting for a style picture, the method to use, and since when
    # (the wait expires, so a photo sent hours later is a new photo, not a style).
    awaiting_image_id: Mapped[int | None] = mapped_column(Integer)
    awaiting_method: Mapped[str | None] = mapped_column(String(32))
    awaiting_since: Mapped[datetime | None] = mapped_column(DateTime)
    next_preset: Mapped[str | None] = mapped_column(String(64))  # a deep link's preset, for the next photo
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MediaKind:
    """What a stored input is; a result goes back as the same kind."""

    PHOTO = "photo"
    VIDEO = "video"
    ANIMATION = "animation"  # GIFs reach bots as silent mp4 animations
    VIDEO_NOTE = "video_note"  # the round ones
    CLIPS = (VIDEO, ANIMATION, VIDEO_NOTE)
    #: what user text calls each kind (msgids: shown as ``_(MediaKind.NOUNS[kind])``)
    NOUNS: ClassVar[dict[str, str]] = {PHOTO: N_("picture"), VIDEO: N_("video"), ANIMATION: N_("GIF"),
                                       VIDEO_NOTE: N_("video message")}


class Album(Base):
    """Photos sent together (one ``media_group_id``): one style menu, one job, results as one album."""

    __tablename__ = "albums"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    media_group_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    menu_sent_at: Mapped[datetime | None] = mapped_column(DateTime)  # its one menu (photos reach several replicas)

    __table_args__ = (Index("ix_albums_user_group", "user_id", "media_group_id", unique=True),)


class StoredImage(Base):
    """A user's input picture or clip, saved once under DATA_DIR/images (by Telegram's file_unique_id)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    file_unique_id: Mapped[str] = mapped_column(String(128))
    file_id: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(String(512))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default=MediaKind.PHOTO, server_default=MediaKind.PHOTO)
    duration: Mapped[float | None] = mapped_column(Float)  # seconds, clips only
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # the message that last carried it (replies quote it)
    album_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("albums.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # An upload through the HTTP API: its bytes in the database, where every process reads them (no file_id). No
    # foreign key: images is a parent table SQLite cannot alter in place; an expired blob reads as a gone input.
    blob_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_images_user_unique", "user_id", "file_unique_id", unique=True),)

    @property
    def is_clip(self) -> bool:
        return self.kind in MediaKind.CLIPS


class JobKind:
    STYLIZE = "stylize"  # one photo or clip in one style
    ALBUM = "album"  # every photo of an album (``inputs``) in one style
    SHEET = "sheet"  # one photo in every preset: a contact sheet


class Job(Base):
    """One stylization request; the persisted queue (status queued/running survive restarts)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_user_idempotency", "user_id", "idempotency_key", unique=True), NEVER_REUSED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.STYLIZE, server_default=JobKind.STYLIZE)
    inputs: Mapped[list[int] | None] = mapped_column(JSON)  # album: the images, in order
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    content_image_id: Mapped[int] = mapped_column(Integer, ForeignKey("images.id", ondelete="CASCADE"))
    style_image_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("images.id", ondelete="CASCADE"))
    preset: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(Integer)  # the result this job varies (strength, colours, ...)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    reply_to: Mapped[int | None] = mapped_column(BigInteger)  # the user's message the status and result quote
    locale: Mapped[str | None] = mapped_column(String(8))  # language of its messages
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    device: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    result_file_id: Mapped[str | None] = mapped_column(String(256))
    result_path: Mapped[str | None] = mapped_column(String(512))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The update that asked for it: a webhook update re-delivered after a replica died mid-request makes no
    # second job (NULL for jobs nobody asked for by an update, which never clash).
    update_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Which front end it came from (``telegram`` | ``api``), told what becomes of it (bot.jobs.origin).
    origin: Mapped[str] = mapped_column(String(16), default="telegram", server_default="telegram")
    # The HTTP API's view: an unguessable id (128 random bits), the caller's Idempotency-Key with the request's
    # hash, progress in [0, 1] while it runs, and the result kept where every replica reads it.
    public_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float | None] = mapped_column(Float)
    result_blob_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("blobs.id", ondelete="SET NULL"))
    share_token: Mapped[str | None] = mapped_column(String(32), unique=True)  # /s/{token}: the result, public


class PresetRow(Base):
    """A preset users can pick: synced from the stylizer manifests at start; admins toggle ``enabled``."""

    __tablename__ = "presets"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    method: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16), default="shipped")  # shipped | trained
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    available: Mapped[bool] = mapped_column(Boolean, default=True)  # still listed in a manifest
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # an admin-trained preset's own fields and files, so every worker and replica can install it (bot.trained)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    weights_blob_id: Mapped[int | None] = mapped_column(Integer)
    thumbnail_blob_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class TrainingRun(Base):
    """An admin's /train request: draft preset, progress, and whether it was published."""

    __tablename__ = "training_runs"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))
    style_path: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed published ...
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the trained Preset's fields and blob ids
    style_blob_id: Mapped[int | None] = mapped_column(Integer)  # the admin's picture, for a trainer elsewhere
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)  # its trainer is alive (running runs)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class Event(Base):
    """Every incoming update (message, command, button), with what the bot made of it."""

    __tablename__ = "events"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # photo, document, text, command, callback, sticker, ...
    detail: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16), default="received")  # received | accepted | rejected | error
    reason: Mapped[str | None] = mapped_column(String(256))
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProcessedUpdate(Base):
    """Webhook updates claimed or processed: Telegram re-delivers an update it got no 200 for, and a re-delivered
    one found here processed is answered 200 without running again, one found in flight 503 (``python -m bot web``)."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # claimed before it runs (the insert decides between two copies arriving at once); processed when its effects
    # are committed (NULL while in flight)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)


class Blob(Base):
    """Bytes every process must read wherever they were written: the HTTP API's uploads and results (the replica
    answering ``GET /result`` is rarely the worker that rendered it). They expire (``RESULT_TTL``)."""

    __tablename__ = "blobs"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ApiClient(Base):
    """An API key's holder. Only the key's SHA-256 is stored; the key is shown once, when it is made."""

    __tablename__ = "api_clients"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # this key's own limits (None: the settings' API_* defaults): a partner may get more than a hobbyist
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    jobs_at_once: Mapped[int | None] = mapped_column(Integer)
    jobs_per_minute: Mapped[int | None] = mapped_column(Integer)
    queue_share: Mapped[float | None] = mapped_column(Float)  # of MAX_QUEUE this key's queued jobs may take
