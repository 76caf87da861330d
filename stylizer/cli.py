"""Command line: ``python -m stylizer stylize|presets|export-onnx|train-*`` (contract in the brief).

Exit codes: 0 success, 2 bad arguments or unusable input (one line on stderr), 1 unexpected failure.

Torch loads only when a command needs it: plain AdaIN work on stills (one style picture, the CPU) runs the chosen
engine's ONNX export on OpenVINO (:mod:`stylizer.onnx_engine`), because ``import torch`` alone is 1.1-1.9 s of
such a run here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from . import onnx_engine
from .engines import ENGINE_MODELS, choose_engine, correlation, full_alpha, has_model
from .errors import StylizerError
from .image import (
    DEFAULT_SIZE,
    IMAGE_EXTENSIONS,
    MIN_SIDE,
    TILE_SIDE,
    VIDEO_EXTENSIONS,
    is_video_file,
    list_media,
    load_image,
    resize_long_side,
    save_image,
)
from .manifest import Manifest
from .process import keep_freed_memory
from .progress_bar import Reporter

if TYPE_CHECKING:
    from .facade import StyleRef, Stylizer, StylizeRequest

#: Draws one still: (input path, its decoded picture or the path, output path) -> the picture to save, or None
#: when it wrote the output itself (a clip).
Render = Callable[[Path, "Path | Image.Image", Path], "Image.Image | None"]

log = logging.getLogger("stylizer")
#: Clips keep their own size up to this long side unless --size says otherwise.
VIDEO_SIZE = 720

#: Training subcommands live in their own modules (imported only when used): name -> "module:function".
TRAINERS = {
    "train-decoder": "stylizer.train.decoder:add_arguments",
    "train-preset": "stylizer.train.preset:add_arguments",
    "train-student": "stylizer.train.student:add_arguments",
    "calibrate-int8": "stylizer.train.int8:add_arguments",
}


class UsageError(StylizerError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (the contract), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _weight(value: str) -> float:
    try:
        w = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if w <= 0:
        raise argparse.ArgumentTypeError(f"weights must be positive: {value!r}")
    return w


def _strength(value: str) -> float:
    s = float(value)
    if not 0 <= s <= 1:
        raise argparse.ArgumentTypeError(f"strength must be in 0..1, got {value}")
    return s


def build_parser(trainer: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with ``trainer`` (the command of this run, when it is not a trainer: anything else) only
    that trainer's arguments are built, so a stylize run does not import the training modules (and torch)."""
    parser = _Parser(prog="python -m stylizer", description="Neural style transfer (AdaIN, CIN, Johnson, Gatys)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("stylize", help="stylize one or more images (or folders)")
    p.add_argument("content", nargs="+", type=Path, help="content image(s) or folder(s)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (one input) or folder")
    style = p.add_mutually_exclusive_group(required=True)
    style.add_argument("--style", nargs="+", type=Path, help="style image(s)")
    style.add_argument("--preset", nargs="+", metavar="NAME[:W]", help="preset name(s), optional weights")
    p.add_argument("--style-weights", nargs="+", type=_weight, metavar="W", help="weights for --style images")
    p.add_argument("--method", help="adain | cin | johnson | gatys (default: the preset's, else adain)")
    p.add_argument("--strength", type=_strength, default=1.0, help="0..1, how much style (default 1)")
    p.add_argument("--size", type=int, default=None,
                   help=f"long side of the output in px (default {DEFAULT_SIZE}; clips: own size up to {VIDEO_SIZE})")
    p.add_argument("--style-size", type=int, default=None, help="long side style images are resized to")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default=None,
                   choices=["luminance", "histogram"], help="keep the content colours (default: luminance)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (gatys)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--fp32", action="store_true", help="disable mixed precision")
    p.add_argument("--no-coherence", action="store_true",
                   help="clips: stylize every frame on its own (flickers; for comparison)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary on stdout (files, seconds, outputs) instead of the summary line")
    p.add_argument("--opt", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="method option, repeatable (adain: engine=student|vgg; gatys: optimizer=adam, scales=1, ...)")

    sub.add_parser("presets", help="list presets: name, method, source image, weights file")
    export = sub.add_parser("export-onnx", help="export AdaIN's engines to ONNX (the torch-free stylize path)")
    export.add_argument("--force", action="store_true", help="export again even if these weights already are")

    for name, target in TRAINERS.items():
        tp = sub.add_parser(name, help=f"{name.replace('-', ' ')} (see --help)")
        if trainer is not None and trainer != name:
            tp.add_argument("rest", nargs=argparse.REMAINDER)  # not this run's command: its module stays unloaded
            continue
        module_name, _, func = target.partition(":")
        try:
            getattr(importlib.import_module(module_name), func)(tp)
        except ImportError:
            tp.set_defaults(unavailable=name)
            tp.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _expand_inputs(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = list_media(path)
            if not found:
                kinds = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
                raise UsageError(f"{path}: folder holds no images or clips ({kinds})")
            files.extend(found)
        else:
            files.append(path)
    return files


def _styles(args: argparse.Namespace) -> list[StyleRef]:
    from .facade import StyleRef

    if args.style:
        weights = args.style_weights or [1.0] * len(args.style)
        if len(weights) != len(args.style):
            raise UsageError(f"--style-weights gives {len(weights)} weights for {len(args.style)} styles")
        return [StyleRef(image=path, weight=w) for path, w in zip(args.style, weights, strict=True)]
    if args.style_weights:
        raise UsageError("--style-weights goes with --style; write presets as NAME:W")
    refs = []
    for item in args.preset:
        name, _, weight = item.partition(":")
        refs.append(StyleRef(preset=name, weight=_weight(weight) if weight else 1.0))
    return refs


def cmd_stylize(args: argparse.Namespace) -> int:
    inputs = _expand_inputs(args.content)
    many = len(inputs) > 1 or any(p.is_dir() for p in args.content)
    if many and args.output.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
        raise UsageError(f"{len(inputs)} inputs need an output folder, not the file {args.output}")
    reporter = Reporter(len(inputs), args.output, as_json=args.json)
    onnx = _onnx_renderer(args, inputs)
    render, lanes = onnx if onnx is not None else (_torch_renderer(args, many, reporter), 1)
    # Decoding the next input and encoding the last output (Pillow releases the GIL) overlap with stylizing:
    # for the fast methods on a CPU each is a fifth of the time per image. One of each is pending at most.
    # OpenVINO on a folder stylizes ``lanes`` stills at once (its throughput hint: on 2 cores, two one-core streams
    # draw 13 % more pictures a second than one two-core stream for the teacher, 7 % for the student); torch draws
    # one at a time, in this thread (Ctrl-C stops it at once).
    with ThreadPoolExecutor(max_workers=1) as writer, ThreadPoolExecutor(max_workers=1) as reader, \
            ThreadPoolExecutor(max_workers=lanes) as renderers:
        saving: Future | None = None
        drawing: deque[tuple[Path, Path, Future]] = deque()  # (input, output, its picture) in input order

        def finish(keep: int) -> None:
            nonlocal saving
            while len(drawing) > keep:
                source, out, future = drawing.popleft()
                picture = future.result()
                reporter.done(source, out)
                if picture is None:
                    continue
                if saving is not None:
                    saving.result()
                saving = writer.submit(save_image, picture, out)

        stills = [p for p in inputs if not is_video_file(p)]
        after = dict(pairwise(stills))  # each still -> the next one to decode ahead
        decoded = {stills[0]: reader.submit(load_image, stills[0])} if many and stills else {}
        for path in inputs:
            clip = is_video_file(path)
            content: Path | Image.Image = path
            if path in decoded:
                content = decoded.pop(path).result()
                if path in after:
                    decoded[after[path]] = reader.submit(load_image, after[path])
            suffix = (".gif" if path.suffix.lower() == ".gif" else ".mp4") if clip else ".png"
            out = args.output / f"{path.stem}{suffix}" if many else args.output
            if not many and not out.suffix:
                out = out.with_suffix(suffix)
            if lanes > 1:
                drawing.append((path, out, renderers.submit(render, path, content, out)))
            else:
                drawing.append((path, out, _done(render(path, content, out))))
            finish(keep=lanes - 1)
        finish(keep=0)
        if saving is not None:
            saving.result()
    reporter.close()
    return 0


def _done(picture: Image.Image | None) -> Future:
    """A picture drawn in this thread, in the shape of one drawn in a lane."""
    future: Future = Future()
    future.set_result(picture)
    return future


def _onnx_renderer(args: argparse.Namespace, inputs: list[Path]) -> tuple[Render, int] | None:
    """The OpenVINO path when this run is plain AdaIN work it draws the same (else None: torch's path), with how
    many stills it may draw at once (OpenVINO's own count for throughput when there are several, else 1).

    That is: the adain method on either engine (:func:`stylizer.engines.choose_engine`), one style picture (no
    weights to check), stills only at most tile size, no colour preservation or method options, on the CPU
    (``auto`` without an NVIDIA driver). The first run after new weights exports them (torch, seconds, once).
    """
    size = args.size or DEFAULT_SIZE
    options = dict(args.opt)
    if not (args.method in (None, "adain") and args.style and len(args.style) == 1 and not args.style_weights
            and not args.preserve_color and set(options) <= {"engine"} and MIN_SIDE <= size <= TILE_SIDE
            and onnx_engine.enabled()
            and (args.device == "cpu" or (args.device == "auto" and not _nvidia_driver()))
            and not any(is_video_file(p) for p in inputs)):
        return None
    manifest = Manifest.default()
    engine = choose_engine(manifest, options.get("engine"))
    try:
        graphs = onnx_engine.OnnxEngine(_export(manifest, engine), engine, fp32=args.fp32,
                                        throughput=len(inputs) > 1)
    except StylizerError:
        raise  # unusable weights: the torch path would say the same
    except Exception as exc:  # a damaged export, a CPU OpenVINO cannot compile for: torch still draws it
        log.warning("the OpenVINO path is unavailable (%s: %s); running on torch (`python -m stylizer export-onnx "
                    "--force` rewrites the export)", type(exc).__name__, exc)
        return None
    stats = graphs.style_stats(resize_long_side(load_image(args.style[0]), args.style_size or size),
                               correlation(manifest, ENGINE_MODELS[engine]))
    alpha = args.strength * full_alpha(manifest, ENGINE_MODELS[engine])

    def render(path: Path, content: Path | Image.Image, out: Path) -> Image.Image:
        t0 = time.perf_counter()
        picture = graphs.stylize(resize_long_side(load_image(content), size), stats, alpha)
        log.info("%s -> %s (adain %s on openvino, %.2fs)", path, out, engine, time.perf_counter() - t0)
        return picture

    return render, graphs.lanes


def _nvidia_driver() -> bool:
    """Whether an NVIDIA driver is loaded (``--device auto`` would then pick CUDA): known without torch."""
    return Path("/proc/driver/nvidia/version").exists()


def _torch_renderer(args: argparse.Namespace, many: bool, reporter: Reporter) -> Render:
    """Every other run: through the facade (loads torch)."""
    from .facade import Stylizer, StylizeRequest

    styles = _styles(args)
    # A folder shares its style pictures: decode and resize each once, at the size every still will use, instead
    # of once per photo (a 4000 px painting costs ~0.1 s to decode, resize and hash each time).
    still_styles = [replace(ref, image=resize_long_side(load_image(ref.image), args.style_size or args.size
                                                        or DEFAULT_SIZE)) if ref.image is not None else ref
                    for ref in styles] if many else styles
    stylizer = Stylizer()

    def render(path: Path, content: Path | Image.Image, out: Path) -> Image.Image | None:
        clip = is_video_file(path)
        request = StylizeRequest(
            content=content, styles=styles if clip else still_styles, method=args.method, strength=args.strength,
            preserve_color=args.preserve_color or False, size=args.size or (None if clip else DEFAULT_SIZE),
            style_size=args.style_size, steps=args.steps, seed=args.seed, device=args.device,
            mixed_precision=not args.fp32, progress=_progress(reporter, args.verbose),
            options=dict(args.opt),
        )
        if clip:
            _stylize_clip(stylizer, request, path, out, args)
            return None
        result = stylizer.stylize(request)
        log.info("%s -> %s (%s on %s, %.2fs)", path, out, result.method, result.device, result.timings["total"])
        return result.image

    return render


def _stylize_clip(stylizer: Stylizer, request: StylizeRequest, path: Path, out: Path,
                  args: argparse.Namespace) -> None:
    if out.suffix.lower() in IMAGE_EXTENSIONS - {".gif"}:
        raise UsageError(f"{path} is a clip: write it to an .mp4 or .gif, not {out.name}")
    # without --size: the clip's own size, at most VIDEO_SIZE (a phone's 4K would take minutes)
    result = stylizer.stylize_video(request, out, coherent=not args.no_coherence, max_size=VIDEO_SIZE)
    log.info("%s -> %s (%d frames, %s fps, %s on %s, %.1fs)", path, out, result.info.frames, result.info.fps,
             result.method, result.device, result.timings["total"])


def _progress(reporter: Reporter, verbose: bool):  # type: ignore[no-untyped-def]
    """The facade's progress callback: the terminal's bar, and the log with -v."""

    def report(progress) -> None:  # type: ignore[no-untyped-def]
        reporter.step(progress)
        if verbose:
            _log_progress(progress)

    return report


def _log_progress(progress) -> None:
    log.info("%s %d/%d%s", progress.stage, progress.step, progress.total,
             f" loss={progress.loss:.4g}" if progress.loss is not None else "")


def cmd_presets(args: argparse.Namespace) -> int:
    manifest = Manifest.default()
    rows = [(p.name, p.method, p.source or "-", p.file.name) for p in manifest.presets.values()]
    if not rows:
        print("no presets installed")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export each AdaIN engine the manifest lists to ONNX, unless its weights already are (``--force``: again)."""
    manifest = Manifest.default()
    engines = [e for e, model in ENGINE_MODELS.items() if has_model(manifest, model)]
    if not engines:
        print("no AdaIN weights in the manifest: nothing to export")
    for engine in engines:
        print(_export(manifest, engine, force=args.force))
    return 0


def _export(manifest: Manifest, engine: str, force: bool = False) -> Path:
    """The folder of the manifest ``engine``'s ONNX export, written first when it is missing (or ``force``):
    torch loads only then, a few seconds once per weights file."""
    if force or not onnx_engine.is_exported(manifest, engine):
        from .export import export_onnx

        log.info("exporting the %s engine to ONNX (once per weights file) to %s", engine,
                 export_onnx(manifest, engine))
    return onnx_engine.export_dir(manifest, engine)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command if command in TRAINERS else "").parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_freed_memory()
    try:
        if getattr(args, "unavailable", None):
            raise UsageError(f"{args.unavailable} is not available in this build yet")
        if args.command == "stylize":
            return cmd_stylize(args)
        if args.command == "presets":
            return cmd_presets(args)
        if args.command == "export-onnx":
            return cmd_export_onnx(args)
        return args.run(args)
    except StylizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
