"""The worker-thread side of a job: stylize through the facade and encode what Telegram will get.

Nothing here touches the database or Telegram; a :class:`Work` holds plain values (no ORM objects
cross the thread boundary) and :func:`render` returns the files and bytes to deliver.
"""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from stylizer.errors import StylizerError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest, StylizeResult
from stylizer.methods import Progress, ProgressFn
from stylizer.video import VideoLimits

from ..config import Settings
from ..models import JobKind, MediaKind


def video_limits(settings: Settings) -> VideoLimits:
    """The clip limits of intake's probe *and* of the render, which counts time and frames while decoding: a clip
    whose header lies about its length is refused there, whatever the probe believed."""
    return VideoLimits(max_seconds=settings.max_video_seconds, max_side=settings.max_image_side)

#: Telegram's sendPhoto limit; results are JPEG-encoded below it (the PNG is offered as a file).
PHOTO_LIMIT = 10 * 1024 * 1024
#: Telegram's largest round video note.
VIDEO_NOTE_SIDE = 640
#: Style size relative to the output for each brush: a smaller style picture paints larger strokes.
BRUSH_SCALE = {"small": 2.0, "medium": 1.0, "large": 0.5}


@dataclass
class Work:
    """What a worker thread needs for one job."""

    job_id: int
    user_id: int
    kind: str  # JobKind
    contents: list[Path]  # one, or an album's photos
    media: str  # MediaKind of the (first) input
    side: int  # long side of the (first) input
    method: str
    params: dict
    preset: str | None = None
    style: Path | None = None  # own style picture (or a preset's painting for a high-quality re-run)


@dataclass
class Rendered:
    """The files of a result: PNGs (one per album photo) or an mp4, and the photo-sized JPEGs."""

    paths: list[Path]
    jpegs: list[bytes] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    device: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    video: object | None = None  # stylizer VideoInfo of a clip


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    """JPEG within Telegram's photo limit (quality lowered until it fits)."""
    data = b""
    for q in (quality, 85, 75, 60):
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=q)
        data = buf.getvalue()
        if len(data) <= PHOTO_LIMIT:
            break
    return data


def styles_of(work: Work) -> list[StyleRef]:
    """The job's style mix: its preset or picture, plus an optional second style (``params["mix"]``)."""
    mix = work.params.get("mix") or {}
    share = float(mix.get("share", 0))
    main = 1.0 - share if mix else 1.0
    styles = [StyleRef(image=work.style, weight=main) if work.style else StyleRef(preset=work.preset, weight=main)]
    if mix.get("style_file"):
        styles.append(StyleRef(image=Path(mix["style_file"]), weight=share))
    elif mix.get("preset"):
        styles.append(StyleRef(preset=mix["preset"], weight=share))
    return styles


class Renderer:
    def __init__(self, stylizer: Stylizer, settings: Settings) -> None:
        self.stylizer, self.settings = stylizer, settings

    def request(self, work: Work, content: Path, size: int, progress: ProgressFn | None,
                cancel: threading.Event) -> StylizeRequest:
        params = work.params
        brush = BRUSH_SCALE.get(str(params.get("brush", "medium")), 1.0)
        return StylizeRequest(
            content=content, styles=styles_of(work), method=work.method,
            strength=float(params.get("strength", 1.0)),
            preserve_color="luminance" if params.get("preserve_color") else False,
            size=size, style_size=None if brush == 1.0 else max(64, min(1024, round(size * brush))),
            steps=params.get("steps"), seed=params.get("seed"), device=self.settings.stylizer_device,
            progress=progress, cancel=cancel, tile=self.settings.tile_size,
            options={"preview": True} if self.settings.preview_interval > 0 else {},
        )

    def render(self, work: Work, progress: ProgressFn, cancel: threading.Event) -> Rendered:
        """Runs in a worker thread."""
        if work.kind == JobKind.SHEET:
            return self._sheet(work, progress, cancel)
        if work.media in MediaKind.CLIPS:
            return self._clip(work, progress, cancel)
        folder = self._folder(work)
        size = int(work.params.get("size", self.settings.output_size))
        out = Rendered(paths=[])
        count = len(work.contents)
        for i, content in enumerate(work.contents):
            def report(p: Progress, i: int = i) -> None:  # an album's progress runs over all its photos
                progress(Progress(p.stage, i * p.total + p.step, count * p.total, p.loss, p.preview) if p.total else p)

            result = self.stylizer.stylize(self.request(work, content, size, report if count > 1 else progress,
                                                        cancel))
            self._add(out, folder / (f"{work.job_id}.png" if count == 1 else f"{work.job_id}_{i + 1}.png"), result)
        return out

    def _folder(self, work: Work) -> Path:
        """The user's results folder (created)."""
        folder = self.settings.results_dir / str(work.user_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _add(out: Rendered, path: Path, result: StylizeResult) -> None:
        result.image.save(path, "PNG")
        out.paths.append(path)
        out.jpegs.append(jpeg(result.image))
        out.sizes.append(result.size)
        out.device = result.device
        for key, value in result.timings.items():
            out.timings[key] = out.timings.get(key, 0.0) + value

    def batch_key(self, work: Work) -> tuple | None:
        """Jobs with equal keys may share forward passes (:meth:`render_batch`); None: this one runs alone.

        For jobs of a fast method (the caller keeps slow ones out: they report progress alone). Only single
        photos below the tiling size qualify: everything of the request but its content goes into the key
        (the facade batches contents in one style, and groups by shape).
        """
        size = int(work.params.get("size", self.settings.output_size))
        if (work.kind != JobKind.STYLIZE or work.media in MediaKind.CLIPS or len(work.contents) != 1
                or (self.settings.tile_size and size > self.settings.tile_size)):
            return None
        p = work.params
        return (work.method, work.preset, str(work.style or ""), size, float(p.get("strength", 1.0)),
                bool(p.get("preserve_color")), str(p.get("brush", "medium")),
                json.dumps(p.get("mix") or {}, sort_keys=True), bool(p.get("as_document")))

    def render_batch(self, works: list[Work], cancels: list[threading.Event]) -> list[Rendered | StylizerError]:
        """Runs in a worker thread: jobs of one :meth:`batch_key` through shared forward passes."""
        size = int(works[0].params.get("size", self.settings.output_size))
        requests = [self.request(w, w.contents[0], size, None, c) for w, c in zip(works, cancels, strict=True)]
        results = self.stylizer.stylize_batch(requests, batch=len(requests))
        done: list[Rendered | StylizerError] = []
        for work, result in zip(works, results, strict=True):
            if isinstance(result, StylizerError):
                done.append(result)
                continue
            out = Rendered(paths=[])
            self._add(out, self._folder(work) / f"{work.job_id}.png", result)
            done.append(out)
        return done

    def _clip(self, work: Work, progress: ProgressFn, cancel: threading.Event) -> Rendered:
        """A clip at most VIDEO_SIZE on its long side (video notes: at most 640, Telegram's limit)."""
        size = min(int(work.params.get("size") or self.settings.video_size), self.settings.video_size,
                   work.side or self.settings.video_size)
        if work.media == MediaKind.VIDEO_NOTE:
            size = min(size, VIDEO_NOTE_SIDE)
        # a GIF asked for as a GIF (the HTTP API) comes back as one; Telegram takes GIFs as mp4 animations
        path = self._folder(work) / f"{work.job_id}{'.gif' if work.params.get('as_gif') else '.mp4'}"
        result = self.stylizer.stylize_video(self.request(work, work.contents[0], size, progress, cancel), path,
                                             limits=video_limits(self.settings))
        limit = self.settings.max_video_output_mb
        if path.stat().st_size > limit * 2**20:
            mb = path.stat().st_size / 2**20
            path.unlink(missing_ok=True)
            raise StylizerError(f"the result would be {mb:.0f} MB, more than the {limit:g} MB Telegram allows; "
                                "please send a shorter clip")
        return Rendered(paths=[path], sizes=[result.info.size], device=result.device, timings=result.timings,
                        video=result.info)

    def _sheet(self, work: Work, progress: ProgressFn, cancel: threading.Event) -> Rendered:
        """Every preset in ``params["presets"]`` on one contact sheet, numbered like the menu under it."""
        names: list[str] = list(work.params.get("presets") or [])
        size = int(work.params.get("size", self.settings.sheet_size))
        request = StylizeRequest(content=work.contents[0], styles=[], size=size, device=self.settings.stylizer_device,
                                 progress=progress, cancel=cancel)
        pictures = self.stylizer.stylize_presets(request, names)
        titles = [self.stylizer.manifest.preset(name).title for name, _ in pictures]
        sheet = contact_sheet([p for _, p in pictures], titles)
        path = self._folder(work) / f"{work.job_id}_sheet.png"
        sheet.save(path, "PNG")
        return Rendered(paths=[path], jpegs=[jpeg(sheet, 90)], sizes=[sheet.size], device=str(request.device))


def contact_sheet(pictures: list[Image.Image], titles: list[str], columns: int | None = None) -> Image.Image:
    """A grid of same-sized pictures with a numbered title under each."""
    if not pictures:
        raise StylizerError("no presets to show")
    columns = columns or min(4, math.ceil(math.sqrt(len(pictures))))
    rows = math.ceil(len(pictures) / columns)
    cell_w = max(p.width for p in pictures)
    cell_h = max(p.height for p in pictures)
    label, gap = 26, 6
    sheet = Image.new("RGB", (columns * (cell_w + gap) + gap, rows * (cell_h + label + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=15)
    except (TypeError, OSError):  # a Pillow without FreeType
        font = ImageFont.load_default()
    for i, (picture, title) in enumerate(zip(pictures, titles, strict=True)):
        x = gap + (i % columns) * (cell_w + gap)
        y = gap + (i // columns) * (cell_h + label + gap)
        sheet.paste(picture, (x + (cell_w - picture.width) // 2, y + (cell_h - picture.height) // 2))
        text = f"{i + 1}. {title}"
        while len(text) > 4 and draw.textlength(text, font=font) > cell_w - 4:
            text = text.rstrip("…")[:-1] + "…"
        draw.text((x + 2, y + cell_h + 4), text, fill="black", font=font)
    return sheet
