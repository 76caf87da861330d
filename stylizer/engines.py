"""AdaIN's two engines (the VGG teacher and the distilled student): which one a job runs, and what strength 1 means.

Torch-free on purpose: the CLI decides here which engine's OpenVINO export (:mod:`stylizer.onnx_engine`) a job
runs before anything loads torch, whose import alone costs 1.1-1.9 s on the machines we measured, longer than
the student takes for 20 photos at 512 px there. :mod:`stylizer.adain` decides with the same functions, so the
two paths cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import MethodError, PresetError
from .manifest import Manifest, cached_sha256

#: ``[models.*]`` names of the teacher's decoder and of the student.
TEACHER_MODEL = "adain_decoder"
STUDENT_MODEL = "adain_student"
#: engine -> the ``[models.*]`` entry whose weights it runs
ENGINE_MODELS = {"student": STUDENT_MODEL, "vgg": TEACHER_MODEL}
ENGINES = tuple(ENGINE_MODELS)
#: Environment default for the engine (a job's ``engine`` option wins).
ENGINE_ENV = "STYLIZER_ADAIN_ENGINE"


def has_model(manifest: Manifest, name: str) -> bool:
    """Whether the manifest lists ``name`` and its file is there."""
    entry = manifest.models.get(name)
    return entry is not None and entry.file.is_file()


def full_alpha(manifest: Manifest, model: str = TEACHER_MODEL) -> float:
    """The feature-interpolation ``alpha`` that strength 1 stands for with the manifest's decoder (or student).

    Past a point, more alpha costs a decoder much content for little style; ``full_alpha`` in its
    ``[models.*]`` entry (default 1, the paper's) puts "full strength" where the brief's content_err and
    style_gap medians both stay inside their bounds (measurements in the manifest).
    """
    value = manifest.model(model).info.get("full_alpha", 1.0)
    if not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise PresetError(f"[models.{model}] full_alpha must be a number in (0, 1], got {value!r}")
    return float(value)


def correlation(manifest: Manifest, model: str = TEACHER_MODEL) -> float:
    """How far towards its style's channel correlation the manifest's decoder takes a picture: the weight of
    correlated AdaIN's mixing (:mod:`stylizer.correlation`), ``correlation`` in its ``[models.*]`` entry (default 0:
    plain AdaIN, as the student and any decoder not calibrated for it run). Calibrated per decoder, like
    :func:`full_alpha`; the figures are in the manifest."""
    value = manifest.model(model).info.get("correlation", 0.0)
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise PresetError(f"[models.{model}] correlation must be a number in [0, 1], got {value!r}")
    return float(value)


def model_id(manifest: Manifest, model: str) -> str:
    """What identifies the manifest's weights of ``model``: their sha256 (hashed once per file when not listed)."""
    entry = manifest.model(model)
    return entry.sha256 or cached_sha256(entry.file)


def student_id(manifest: Manifest) -> str:
    """The student's :func:`model_id`. Statistics at the student's taps mean something only to the weights that
    measured them, so preset files, the statistics cache and the ONNX export carry this."""
    return model_id(manifest, STUDENT_MODEL)


def fits_student(path: Path, manifest: Manifest) -> bool:
    """Whether a preset file holds statistics for the manifest's student (read from its header only)."""
    try:
        with safe_open(str(path), framework="numpy") as fh:
            keys, meta = set(fh.keys()), fh.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return False
    return "student_mean" in keys and meta.get("student") == student_id(manifest)


def choose_engine(manifest: Manifest, asked: object = None, presets: Iterable[Path] = ()) -> str:
    """``student`` or ``vgg``: as ``asked`` (else ``$STYLIZER_ADAIN_ENGINE``), else the student when its weights
    are listed and its entry does not say ``default = false``.

    ``presets`` are the job's preset files: each holds VGG statistics, and student statistics for the student it
    was made with, so a job with a preset made before this student (none, or another one's) uses ``vgg``.
    """
    asked = str(asked or os.environ.get(ENGINE_ENV, "")).strip().lower()
    if asked and asked not in ENGINES:
        raise MethodError(f"adain: unknown engine {asked!r} (choose {' or '.join(ENGINES)})")
    for name, model in ENGINE_MODELS.items():
        if asked == name and not has_model(manifest, model):
            raise MethodError(f"adain: the {name} engine has no weights ([models.{model}] in the manifest)")
    if asked:
        return asked
    if not has_model(manifest, STUDENT_MODEL):
        return "vgg"
    if not manifest.model(STUDENT_MODEL).info.get("default", True) and has_model(manifest, TEACHER_MODEL):
        return "vgg"  # listed (to resume training, to be asked for) but not yet better than the teacher
    if has_model(manifest, TEACHER_MODEL) and any(not fits_student(p, manifest) for p in presets):
        return "vgg"
    return "student"
