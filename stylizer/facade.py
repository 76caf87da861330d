"""The one entry point the CLI and the bot use: :class:`Stylizer` and :func:`stylize`.

The facade owns the plumbing every method shares: decoding and validating images, resizing,
style mixing weights, resolving presets and the default method, colour preservation, timing, and
recovering from GPU out-of-memory (retry at a smaller size, then on the CPU). Methods only turn
tensors into tensors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from . import image as img
from . import tiling
from .color import ColorMode, match_color, preserve_color
from .device import empty_cache, is_oom, resolve_device
from .errors import Cancelled, MethodError, StylizerError
from .manifest import Manifest, Preset
from .methods import MethodJob, Progress, ProgressFn, StyleInput, available_methods, get_method

if TYPE_CHECKING:
    from .video import VideoInfo, VideoLimits

log = logging.getLogger(__name__)

#: On CUDA OOM, shrink by this factor and retry this many times before falling back to the CPU.
OOM_SHRINK, OOM_RETRIES = 0.75, 2


@dataclass(frozen=True)
class StyleRef:
    """A style ingredient as the caller names it: an image (path, bytes, PIL) or a preset name."""

    image: img.ImageSource | None = None
    preset: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if (self.image is None) == (self.preset is None):
            raise StylizerError("a style is either an image or a preset, not both or neither")
        if not self.weight > 0:
            raise StylizerError(f"style weights must be positive, got {self.weight}")


@dataclass
class StylizeRequest:
    content: img.ImageSource
    styles: Sequence[StyleRef]
    method: str | None = None  # None: the presets' own method, else adain (gatys if adain is missing)
    strength: float = 1.0
    preserve_color: bool | str | ColorMode = False
    size: int | None = img.DEFAULT_SIZE  # long side of the output; None keeps the input size
    style_size: int | None = None  # long side styles are resized to (None: the method's default)
    steps: int | None = None
    seed: int | None = None
    device: str | torch.device = "auto"
    mixed_precision: bool = True
    progress: ProgressFn | None = None
    cancel: threading.Event | None = None
    options: dict[str, object] = field(default_factory=dict)
    #: long side above which tileable methods run tile by tile (None: ``image.TILE_SIDE``; 0: never)
    tile: int | None = None
    #: reflected margin (px) the fast methods see around the picture and the output drops (None: ``edge_margin``
    #: of the long side; 0: none)
    margin: int | None = None


@dataclass
class VideoResult:
    path: Path
    method: str
    device: str
    info: VideoInfo  # of the written file: size, fps, frames, audio
    timings: dict[str, float]


@dataclass(frozen=True)
class MethodInfo:
    """What a front end may know about a method without touching it: how to offer it to users."""

    name: str
    description: str
    accepts_images: bool  # takes any style picture (else presets only)
    slow: bool  # high quality, minutes: one at a time, with progress
    tileable: bool  # full resolution runs in bounded memory
    mixes_presets: bool  # several of its presets can be blended into one style


@dataclass
class StylizeResult:
    image: Image.Image
    method: str
    device: str
    size: tuple[int, int]
    timings: dict[str, float]  # seconds: load, run, total


class Stylizer:
    """Holds the manifest and the (lazily built, shared) networks; safe to call from worker threads."""

    def __init__(self, manifest: Manifest | None = None) -> None:
        self.manifest = manifest or Manifest.default()

    def methods(self) -> list[str]:
        return available_methods(self.manifest)

    def method_info(self) -> dict[str, MethodInfo]:
        """The methods that can run in this installation, by name, in preference order."""
        infos = {}
        for name in self.methods():
            m = get_method(name)
            infos[name] = MethodInfo(name, m.description, m.accepts_images, m.slow, getattr(m, "tileable", False),
                                     getattr(m, "mixes_presets", False))
        return infos

    def resolve_method(self, request: StylizeRequest) -> str:
        if request.method:
            return request.method
        preset_methods = {self.manifest.preset(s.preset).method for s in request.styles if s.preset}
        if len(preset_methods) > 1:
            raise StylizerError("presets of different methods cannot be mixed; pass a method explicitly")
        if preset_methods and not any(s.image is not None for s in request.styles):
            return preset_methods.pop()
        return "adain" if "adain" in self.methods() else "gatys"

    def _check(self, request: StylizeRequest):
        """Validate the request and return (method name, method, colour mode)."""
        if not request.styles:
            raise StylizerError("no style given: pass a style image or a preset")
        if not 0.0 <= request.strength <= 1.0:
            raise StylizerError(f"strength must be between 0 and 1, got {request.strength}")
        if request.size is not None and not img.MIN_SIDE <= request.size <= img.MAX_SIDE:
            raise StylizerError(f"size must be between {img.MIN_SIDE} and {img.MAX_SIDE}, got {request.size}")
        name = self.resolve_method(request)
        method = get_method(name)
        if not method.available(self.manifest):
            raise MethodError(f"method {name!r} has no trained weights in this installation")
        return name, method, ColorMode.parse(request.preserve_color)

    def _load_styles(self, request: StylizeRequest, method, name: str) -> list[tuple[StyleRef, Image.Image | None]]:
        style_pils: list[tuple[StyleRef, Image.Image | None]] = []
        for ref in request.styles:
            if ref.image is not None:
                if not method.accepts_images:
                    raise MethodError(f"method {name!r} only takes presets, not style images")
                style_pils.append((ref, img.load_image(ref.image)))
            else:
                self.manifest.preset(ref.preset or "")  # fail early on unknown presets
                style_pils.append((ref, None))
        return style_pils

    def stylize(self, request: StylizeRequest) -> StylizeResult:
        t0 = time.perf_counter()
        name, method, color = self._check(request)
        content_pil = img.load_image(request.content)
        style_pils = self._load_styles(request, method, name)
        t_load = time.perf_counter()

        device = resolve_device(request.device)
        size = request.size or max(content_pil.size)
        for attempt in range(OOM_RETRIES + 2):
            try:
                content = img.pil_to_tensor(img.resize_long_side(content_pil, size), device)
                styles = self._style_inputs(request, style_pils, content, content_pil, device, size, color)
                out = self._apply(method, request, content, styles, device, color)
                break
            except Exception as exc:
                if not is_oom(exc) or device.type != "cuda":
                    raise
                empty_cache(device)
                if attempt < OOM_RETRIES:
                    size = max(img.MIN_SIDE, int(size * OOM_SHRINK))
                    log.warning("CUDA out of memory; retrying %s at %d px", name, size)
                else:
                    log.warning("CUDA out of memory; retrying %s on the CPU", name)
                    device, size = torch.device("cpu"), request.size or max(content_pil.size)
        else:  # pragma: no cover - the loop always breaks or raises
            raise StylizerError("stylization failed")
        t_run = time.perf_counter()
        result = img.tensor_to_pil(out)
        return StylizeResult(
            image=result,
            method=name,
            device=str(device),
            size=result.size,
            timings={"load": t_load - t0, "run": t_run - t_load, "total": time.perf_counter() - t0},
        )

    def stylize_batch(self, requests: Sequence[StylizeRequest], batch: int = 8,
                      ) -> list[StylizeResult | StylizerError]:
        """Several contents in the same style through shared forward passes (a server's micro-batch).

        The requests must differ only in ``content`` and ``cancel`` (the first one's style, method, size
        and options are used); contents that come out the same shape share one pass of up to ``batch``.
        Every network here normalises per picture, so each result equals its own :meth:`stylize` (the
        tests hold it to that). Per-request failures (an unreadable content, a set ``cancel``) come back
        as errors in their place, the others still run; slow methods, histogram colour matching and
        tiled sizes go one by one through :meth:`stylize`.
        """
        if not requests:
            return []
        first = requests[0]
        name, method, color = self._check(first)
        if method.slow or color is ColorMode.HISTOGRAM or len(requests) == 1:
            return [self._one(r) for r in requests]
        t0 = time.perf_counter()
        style_pils = self._load_styles(first, method, name)
        device = resolve_device(first.device)
        results: list[StylizeResult | StylizerError | None] = [None] * len(requests)
        groups: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
        tile = img.TILE_SIDE if first.tile is None else first.tile
        tiles = bool(tile) and getattr(method, "tileable", False)
        for i, request in enumerate(requests):
            try:
                pil = img.load_image(request.content)
                tensor = img.pil_to_tensor(img.resize_long_side(pil, first.size or max(pil.size)), device)
            except StylizerError as exc:
                results[i] = exc
                continue
            if tiles and max(tensor.shape[-2:]) > tile:
                results[i] = self._one(request)  # tiles are their own batch
                continue
            groups.setdefault(tuple(tensor.shape[-2:]), []).append((i, tensor))
        t_load = time.perf_counter()
        for members in groups.values():
            for start in range(0, len(members), batch):
                chunk = []
                for i, tensor in members[start:start + batch]:
                    cancel = requests[i].cancel
                    if cancel is not None and cancel.is_set():
                        results[i] = Cancelled("cancelled")
                    else:
                        chunk.append((i, tensor))
                if not chunk:
                    continue
                content = torch.cat([t for _, t in chunk])
                t_chunk = time.perf_counter()
                try:
                    styles = self._style_inputs(first, style_pils, content[:1], None, device, first.size, color)
                    out = self._apply(method, replace(first, progress=None, cancel=None), content, styles,
                                      device, color)
                except Exception as exc:
                    if not is_oom(exc):
                        raise
                    empty_cache(device)  # out of memory as a batch: one by one (each with its own fallbacks)
                    for i, _ in chunk:
                        results[i] = self._one(requests[i])
                    continue
                run = (time.perf_counter() - t_chunk) / len(chunk)
                for (i, _), picture in zip(chunk, out, strict=True):
                    image = img.tensor_to_pil(picture[None])
                    results[i] = StylizeResult(image=image, method=name, device=str(device), size=image.size,
                                               timings={"load": (t_load - t0) / len(requests), "run": run,
                                                        "total": time.perf_counter() - t0, "batch": len(chunk)})
        return [r if r is not None else StylizerError("not stylized") for r in results]

    def _one(self, request: StylizeRequest) -> StylizeResult | StylizerError:
        try:
            return self.stylize(request)
        except StylizerError as exc:
            return exc

    def stylize_presets(self, request: StylizeRequest, presets: Sequence[str], batch: int = 8,
                        ) -> list[tuple[str, Image.Image]]:
        """The request's content in each of ``presets`` separately (``request.styles`` is ignored): a
        contact sheet's pictures. Presets of a method that can batch them (``run_each``, e.g. CIN's shared
        net) go through it ``batch`` at a time; the others one by one. Order follows ``presets``."""
        content_pil = img.load_image(request.content)
        device = resolve_device(request.device)
        size = request.size or max(content_pil.size)
        content = img.pil_to_tensor(img.resize_long_side(content_pil, size), device)
        groups: dict[str, list[Preset]] = {}
        for name in presets:
            preset = self.manifest.preset(name)
            groups.setdefault(preset.method, []).append(preset)
        done: dict[str, Image.Image] = {}
        total, finished = len(presets), 0
        for method_name, group in groups.items():
            method = get_method(method_name)
            if not method.available(self.manifest):
                raise MethodError(f"method {method_name!r} has no trained weights in this installation")
            each = getattr(method, "run_each", None)
            chunks = [group[i:i + batch] for i in range(0, len(group), batch)] if each else [[p] for p in group]
            for chunk in chunks:
                styles = [StyleInput(1.0, preset=p, key=f"preset:{p.name}") for p in chunk]
                margin = _margin(request, content)
                job = MethodJob(content=reflect_pad(content, margin), styles=styles, device=device,
                                manifest=self.manifest, strength=request.strength,
                                mixed_precision=request.mixed_precision, cancel=request.cancel)
                job.check_cancelled()
                with torch.inference_mode():
                    out = (each(job) if each else method.run(job)).float().clamp(0, 1)
                if margin:
                    out = out[..., margin:-margin, margin:-margin]
                for preset, picture in zip(chunk, out, strict=True):
                    done[preset.name] = img.tensor_to_pil(picture[None])
                finished += len(chunk)
                if request.progress is not None:
                    request.progress(Progress("presets", finished, total))
        return [(name, done[name]) for name in presets]

    def stylize_video(self, request: StylizeRequest, output: str | Path, *, coherent: bool = True,
                      batch: int | None = None, limits: VideoLimits | None = None,
                      max_size: int | None = None) -> VideoResult:
        """Stylize a clip (``request.content`` is its path) into ``output`` (mp4, or GIF for a ``.gif``).

        Same request as for a picture; ``size`` is the long side of the output frames (None keeps the
        clip's, at most ``max_size``). Frames go through the method in batches of ``batch``; ``coherent``
        blends each frame with the flow-warped previous result (:mod:`stylizer.temporal`). Progress is
        reported in frames. On CUDA out-of-memory a batch is split, and at one frame the clip continues on the CPU.
        """
        from . import video  # PyAV and OpenCV load only for clips

        t0 = time.perf_counter()
        name, method, color = self._check(request)
        if method.slow:
            raise MethodError(f"method {name!r} is too slow for video; pick a preset or a style picture")
        if not isinstance(request.content, str | Path):
            raise StylizerError("a video is given by its file path")
        info = video.probe(request.content, limits)
        style_pils = self._load_styles(request, method, name)
        state: dict[str, object] = {"device": resolve_device(request.device)}
        size = request.size or min(max(info.size), max_size or max(info.size))
        frame_request = replace(request, progress=None)

        def run(frames: torch.Tensor) -> torch.Tensor:
            device = state["device"]
            assert isinstance(device, torch.device)
            x = frames.to(device)
            try:
                if "styles" not in state:  # prepared once per clip (histogram matching uses the first frame)
                    first = img.tensor_to_pil(x[:1])
                    state["styles"] = self._style_inputs(request, style_pils, x[:1], first, device, size, color)
                return self._apply(method, frame_request, x, state["styles"], device, color).cpu()  # type: ignore[arg-type]
            except Exception as exc:
                if not is_oom(exc) or device.type != "cuda":
                    raise
                empty_cache(device)
                if frames.shape[0] > 1:
                    half = frames.shape[0] // 2
                    log.warning("CUDA out of memory; splitting the batch of %d frames", frames.shape[0])
                    return torch.cat([run(frames[:half]), run(frames[half:])])
                log.warning("CUDA out of memory on one frame; continuing the clip on the CPU")
                state["device"] = torch.device("cpu")
                state.pop("styles", None)
                return run(frames)

        blender = video.TemporalCoherence() if coherent else None
        out_info = video.transcode(request.content, output, run, size=size, batch=batch or video.DEFAULT_BATCH,
                                   coherence=blender, progress=request.progress, cancel=request.cancel,
                                   limits=limits, info=info)
        return VideoResult(path=Path(output), method=name, device=str(state["device"]), info=out_info,
                           timings={"total": time.perf_counter() - t0})

    def _style_inputs(self, request, style_pils, content, content_pil, device, size, color) -> list[StyleInput]:
        style_size = request.style_size or size
        total = sum(ref.weight for ref, _ in style_pils)
        styles = []
        for ref, pil in style_pils:
            weight = ref.weight / total
            if pil is None:
                preset = self.manifest.preset(ref.preset or "")
                styles.append(StyleInput(weight, preset=preset, key=f"preset:{preset.name}"))
                continue
            tensor = img.pil_to_tensor(img.resize_long_side(pil, style_size), device)
            key = img.image_digest(pil)
            if color is ColorMode.HISTOGRAM:
                tensor = match_color(tensor, content)
                key += ":hist:" + img.image_digest(content_pil)
            styles.append(StyleInput(weight, image=tensor, key=f"{key}@{style_size}"))
        return styles

    def _apply(self, method, request, content, styles, device, color) -> torch.Tensor:
        """Run the method on a (B, 3, H, W) content batch and post-process: size, colours, range."""
        job = MethodJob(
            content=content, styles=styles, device=device, manifest=self.manifest,
            strength=request.strength, steps=request.steps, seed=request.seed,
            mixed_precision=request.mixed_precision, progress=request.progress, cancel=request.cancel,
            options=dict(request.options),
        )
        job.check_cancelled()
        if request.seed is not None:
            torch.manual_seed(request.seed)
        tile = img.TILE_SIDE if request.tile is None else request.tile
        margin = 0 if method.slow else _margin(request, content)
        if margin:
            content_in = content
            job = replace(job, content=reflect_pad(content, margin))
            content = job.content
        with torch.inference_mode(not method.slow):
            if tile and getattr(method, "tileable", False) and max(content.shape[-2:]) > tile:
                quiet = replace(job, progress=None)
                out = tiling.run_tiled(lambda part: method.run(replace(quiet, content=part)), content, tile=tile,
                                       progress=lambda i, n: job.report("tiles", i, n))
            else:
                out = method.run(job).float()
        out = out.to(content.device)
        if tuple(out.shape[-2:]) != tuple(content.shape[-2:]):
            out = img.resize_tensor(out, tuple(content.shape[-2:]))
        if margin:
            out, content = out[..., margin:-margin, margin:-margin], content_in
        only_images = all(s.image is not None for s in styles)
        if color is ColorMode.LUMINANCE or (color is ColorMode.HISTOGRAM and not only_images):
            out = preserve_color(out, content, color)
        return out.clamp(0, 1)


def _margin(request: StylizeRequest, content: torch.Tensor) -> int:
    """The request's reflected margin for a fast method (:func:`stylizer.image.edge_margin` unless it says)."""
    return img.edge_margin(content.shape[-2:]) if request.margin is None else request.margin


def reflect_pad(x: torch.Tensor, margin: int) -> torch.Tensor:
    """``x`` mirrored ``margin`` px out on every side (repeated while the picture is smaller than the margin)."""
    while margin > 0:
        step = min(margin, x.shape[-1] - 1, x.shape[-2] - 1)
        if step < 1:  # a 1 px picture has nothing to mirror
            return torch.nn.functional.pad(x, (margin,) * 4, mode="replicate")
        x = torch.nn.functional.pad(x, (step,) * 4, mode="reflect")
        margin -= step
    return x


_default: Stylizer | None = None
_default_lock = threading.Lock()


def default_stylizer() -> Stylizer:
    global _default
    with _default_lock:
        if _default is None:
            _default = Stylizer()
        return _default


def stylize(
    content: img.ImageSource,
    style: img.ImageSource | Sequence[StyleRef] | None = None,
    *,
    preset: str | None = None,
    **kwargs,
) -> StylizeResult:
    """Convenience wrapper: ``stylize(photo, style_image)`` or ``stylize(photo, preset="starry_night")``."""
    if preset is not None:
        styles: Sequence[StyleRef] = [StyleRef(preset=preset)]
    elif isinstance(style, Sequence) and style and isinstance(style[0], StyleRef):
        styles = style  # type: ignore[assignment]
    elif style is not None:
        styles = [StyleRef(image=style)]  # type: ignore[arg-type]
    else:
        raise StylizerError("no style given: pass a style image or a preset")
    return default_stylizer().stylize(StylizeRequest(content=content, styles=styles, **kwargs))

