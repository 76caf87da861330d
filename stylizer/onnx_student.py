"""The AdaIN student exported to ONNX and run by OpenVINO: the CLI's torch-free path for stills (issue 11).

On the 2-core machines we serve from, ``import torch`` alone takes 1.1-1.9 s, as long as the student needs for a
dozen 512 px photos, and ``import openvino`` 0.2 s. So when a CLI run is plain student work (still pictures, one
style picture, the CPU; :func:`stylizer.cli` decides) it runs two graphs exported from the student
(:func:`stylizer.student.export_onnx`) with numpy and Pillow only:

* ``style.onnx``: a style picture -> its statistics (the student's ``style_stats``: channel mean/std at its AdaIN
  taps, and its RGB mean/covariance when the student recolours);
* ``stylize.onnx``: a content picture, those statistics and ``alpha`` -> the stylized picture in [0, 1], the
  recolouring included.

Why OpenVINO, measured per 512x344 picture on a 2-core EPYC with AVX512-BF16 (no AMX): OpenVINO in bf16 0.045 s,
in float32 0.096 s; ONNX Runtime (float32 only on the CPU) 0.112 s; torch bf16 channels_last 0.068 s. OpenVINO
picks bf16 by itself where the CPU computes it natively (as the torch engine's autocast does; ``fp32=True`` keeps
float32), so the two paths agree to a grey level or two on average, not bit for bit.

The export lives in a cache folder keyed by the student's sha256 (:func:`export_dir`), written once per
installation: ``python -m stylizer export-onnx``, which ``scripts/setup`` runs, or the first CLI run that needs it.
OpenVINO keeps its compiled graphs beside it (0.4 s to compile both, 0.1 s from that cache).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .engines import STUDENT_MODEL, has_model, student_id
from .image import padding_to_multiple
from .manifest import Manifest

#: Bumped when the graphs' inputs or outputs change, so an old export is not read by new code.
EXPORT_VERSION = 1
STYLE_GRAPH, STYLIZE_GRAPH = "style.onnx", "stylize.onnx"
#: Where exports go (default ``$XDG_CACHE_HOME/stylizer``, else ``~/.cache/stylizer``).
CACHE_ENV = "STYLIZER_CACHE_DIR"
#: ``0`` turns the OpenVINO path off (the CLI then always runs torch), e.g. to compare the two.
SWITCH_ENV = "STYLIZER_ONNX"
#: The student pools three times: its inputs are padded to a multiple of this.
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


def export_dir(manifest: Manifest) -> Path:
    """Where the manifest's student is (or would be) exported: one folder per weights file and export version."""
    return cache_dir() / "onnx" / f"{STUDENT_MODEL}-{student_id(manifest)[:16]}-v{EXPORT_VERSION}"


def is_exported(manifest: Manifest) -> bool:
    folder = export_dir(manifest)
    return has_model(manifest, STUDENT_MODEL) and all((folder / g).is_file() for g in (STYLE_GRAPH, STYLIZE_GRAPH))


def to_array(picture: Image.Image) -> np.ndarray:
    """RGB picture -> float32 (1, 3, H, W) in [0, 1], padded to multiples of :data:`MULTIPLE` as the torch engine
    pads (reflect, or replicate where the picture is thinner than the padding)."""
    x = np.asarray(picture.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(255.0)
    ph, pw, reflect = padding_to_multiple(*x.shape[-2:], MULTIPLE)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if reflect else "edge")
    return np.ascontiguousarray(x)


def to_picture(x: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """(1, 3, H', W') in [0, 1] -> RGB picture of ``size`` = (W, H) (the padding cropped, rounded as
    :func:`stylizer.image.tensor_to_pil` rounds)."""
    w, h = size
    array = np.rint(np.clip(x[0, :, :h, :w], 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


class OnnxStudent:
    """The two exported graphs compiled by OpenVINO for the CPU."""

    def __init__(self, folder: Path, fp32: bool = False) -> None:
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if fp32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self._style = core.compile_model(str(folder / STYLE_GRAPH), "CPU", config)
        self._stylize = core.compile_model(str(folder / STYLIZE_GRAPH), "CPU", config)
        self._inputs = [i.any_name for i in self._stylize.inputs]
        self._stylize_request = self._stylize.create_infer_request()

    @classmethod
    def load(cls, manifest: Manifest, fp32: bool = False) -> OnnxStudent | None:
        """The manifest student's export, or None when it has not been exported (see :func:`is_exported`)."""
        return cls(export_dir(manifest), fp32) if is_exported(manifest) else None

    def style_stats(self, style: Image.Image) -> list[np.ndarray]:
        """What the student needs of a style picture (as ``Student.style_stats``)."""
        return [np.array(v) for v in self._style({"style": to_array(style)}).values()]

    def stylize(self, content: Image.Image, stats: list[np.ndarray], alpha: float) -> Image.Image:
        """``content`` towards ``stats`` at feature interpolation ``alpha`` (what strength 1 stands for: the
        manifest's ``full_alpha``); the same size as ``content``."""
        feed = dict(zip(self._inputs, [to_array(content), *stats, np.asarray(alpha, dtype=np.float32)], strict=True))
        picture = self._stylize_request.infer(feed)[0]
        return to_picture(picture, content.size)
