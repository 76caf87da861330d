"""Reading what a caller sends: a multipart body counted while it streams in (413 past ``MAX_UPLOAD_MB``, before
anything is decoded), and each file told apart as a picture or a clip we read (else 415), checked like the bot
checks its inputs (else 422), then kept as a blob every process can read."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from PIL import Image, UnidentifiedImageError
from sqlalchemy.exc import IntegrityError

from stylizer.errors import ImageError, VideoError
from stylizer.image import IMAGE_FORMATS, load_image
from stylizer.video import probe

from .. import apikeys, blobs, store
from ..inputs import check_picture
from ..jobs.render import video_limits
from ..models import MediaKind, StoredImage, utcnow
from ..services import Services
from .keys import UPLOAD_SLOTS
from .problems import Problem


@dataclass
class Upload:
    name: str  # the form field
    filename: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)

    def file(self, name: str) -> list[Upload]:
        return [f for f in self.files if f.name == name]

    def digest(self) -> str:
        """The request's identity for Idempotency-Key: its fields and the hashes of its files."""
        h = hashlib.sha256()
        for key in sorted(self.fields):
            h.update(f"{key}={self.fields[key]}\n".encode())
        for upload in self.files:
            h.update(f"{upload.name}:{hashlib.sha256(upload.data).hexdigest()}\n".encode())
        return h.hexdigest()


def _too_large(limit: int) -> Problem:
    return Problem(413, "too-large", f"the request body is over {limit / 2**20:g} MB")


@contextlib.asynccontextmanager
async def received(request: web.Request, limit: int) -> AsyncIterator[Form]:
    """The request's form, held in one of the application's upload slots (``UPLOADS_AT_ONCE``) until the block
    ends: the body is in memory until its bytes are stored, so only a bounded few at once. What the headers alone
    refuse (a declared length over ``limit``: 413; not multipart: 400) is refused before waiting for a slot."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise Problem(400, "malformed", "send multipart/form-data (a `content` file and the style fields)")
    async with request.app[UPLOAD_SLOTS]:
        yield await _read_form(request, limit)


async def _read_form(request: web.Request, limit: int) -> Form:
    """The multipart body, at most ``limit`` bytes in all (413 as soon as it is passed)."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        raise Problem(400, "malformed", f"not a multipart body: {exc}") from exc
    form, total = Form(), 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.name:
                raise Problem(400, "malformed", "every part needs a form field name")
            chunks = []
            while chunk := await part.read_chunk(256 * 1024):
                total += len(chunk)
                if total > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            data = b"".join(chunks)
            if part.filename is not None:
                form.files.append(Upload(part.name, part.filename, data))
            elif part.name in form.fields:
                raise Problem(400, "malformed", f"the field {part.name!r} is given twice")
            else:
                try:
                    form.fields[part.name] = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise Problem(400, "malformed", f"the field {part.name!r} is not UTF-8 text") from exc
    except (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError) as exc:  # a broken multipart stream
        raise Problem(400, "malformed", f"could not read the multipart body: {exc}") from exc
    return form


@dataclass
class Inspected:
    kind: str  # MediaKind
    width: int
    height: int
    duration: float | None = None
    gif: bool = False


def _inspect_picture(data: bytes) -> Inspected | None:
    """A picture's size, None when Pillow does not recognise it as one of ours; ImageError when unusable."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as raw:
            animated = bool(getattr(raw, "is_animated", False)) and raw.format == "GIF"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if animated:
        return None  # an animated GIF is a clip
    image = load_image(data)
    width, height = image.size
    check_picture(width, height)
    return Inspected(MediaKind.PHOTO, width, height)


def _inspect_clip(data: bytes, services: Services) -> Inspected | None:
    with tempfile.NamedTemporaryFile(suffix=".clip") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            info = probe(Path(tmp.name), video_limits(services.settings))
        except VideoError as exc:
            if "not a video" in str(exc) or "cannot be decoded" in str(exc) or "no video track" in str(exc):
                return None
            raise
    kind = MediaKind.ANIMATION if info.is_gif else MediaKind.VIDEO
    return Inspected(kind, info.width, info.height, round(info.duration, 2), gif=info.is_gif)


async def inspect(upload: Upload, services: Services, clips: bool = True) -> Inspected:
    """What ``upload`` is: 415 when neither a picture nor (with ``clips``) a clip we read, 422 when unusable."""
    if not upload.data:
        raise Problem(400, "malformed", f"the file {upload.name!r} is empty")
    try:
        async with services.decodes:
            found = await asyncio.to_thread(_inspect_picture, upload.data)
            if found is None and clips:
                found = await asyncio.to_thread(_inspect_clip, upload.data, services)
    except (ImageError, VideoError) as exc:
        raise Problem(422, "unprocessable", f"{upload.name}: {str(exc).split(': ', 1)[-1]}") from exc
    if found is None:
        what = "a picture (JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, HEIC) or a clip (mp4, mov, webm, mkv, avi, GIF)" \
            if clips else "a picture (JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, HEIC)"
        raise Problem(415, "unsupported-media", f"{upload.name}: not {what}")
    return found


async def store_input(services: Services, user_id: int, name: str, upload: Upload, found: Inspected) -> StoredImage:
    """The upload as an input row of ``user_id`` with its bytes in a blob (the same file twice: one row). Two
    requests with the same file at the same instant both insert; the loser finds the winner's row and uses it."""
    unique = "api_" + hashlib.sha256(upload.data).hexdigest()[:40]
    for attempt in range(3):
        async with services.sessions() as session:
            try:
                await apikeys.ensure_user(session, user_id, name)
                blob = await blobs.put(session, upload.data, "application/octet-stream", services.settings.result_ttl)
                image = await store.find_image(session, user_id, unique)
                if image is None:
                    image = StoredImage(user_id=user_id, file_unique_id=unique, file_id="", path="",
                                        width=found.width, height=found.height, kind=found.kind,
                                        duration=found.duration, created_at=utcnow())
                    session.add(image)
                image.blob_id = blob.id
                await session.commit()
                return image
            except IntegrityError:  # the same user or picture inserted by a concurrent request: use its row
                await session.rollback()
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")
