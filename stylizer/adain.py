"""AdaIN arbitrary style transfer (Huang & Belongie, 2017): VGG-19 encoder, AdaIN, trained decoder.

The encoder is our shared frozen VGG-19 up to ``relu4_1``; the content's channel statistics there are
replaced by the style's (``features.adain``) and a decoder mirroring the encoder turns features back
into pixels. Only the decoder is trained (``python -m stylizer train-decoder``).

* **Strength** interpolates in feature space, ``t = a * AdaIN(f_c, s) + (1 - a) * f_c``, as in the
  paper: it looks better than blending pixels because the decoder always sees plausible features.
  Strength 1 means ``a = full_alpha`` of the decoder's manifest entry (:func:`full_alpha`): a decoder's
  content/style balance is a property of its training, so its calibration travels with its weights.
* **Mixing** several styles mixes their target statistics by weight (the paper's interpolation of
  ``AdaIN`` outputs is the same thing, since AdaIN is affine in the target mean/std).
* **Caching**: style statistics (a few KB) are kept in an LRU keyed by ``StyleInput.key`` (image
  digest or preset name), so a repeated style costs one encoder pass less.
* **Correlated AdaIN**: with ``correlation`` in the decoder's manifest entry above 0, the content's normalised
  features are also mixed across channels by part of the square root of the style's channel correlation
  (:func:`stylizer.features.adain`, :mod:`stylizer.correlation`), so the style's textures come through more at
  little cost to the content (figures in the manifest). Strength and mixing of styles work as before.
* **Presets** with ``method = "adain"`` store only the relu4_1 mean/std/correlation of their painting
  (:func:`make_preset_file`), so they need no network of their own; one made before correlations were measured
  runs as plain AdaIN.

Colour preservation is the facade's job (histogram matching before, luminance transfer after).

**Engines.** ``engine="vgg"`` is the paper's network above (the teacher). ``engine="student"`` (the
default once ``[models.adain_student]`` is in the manifest) is the same algorithm on the distilled
VGG-shaped student of :mod:`stylizer.student`, ~16x fewer operations: the CPU speed the bot needs. It keeps
AdaIN's explicit statistics (measured by the student's own encoder), so it needs no learned style
embedding, and strength is still feature interpolation (its own ``full_alpha``). Choose per call with
``options={"engine": ...}`` (CLI ``--opt engine=vgg``) or ``STYLIZER_ADAIN_ENGINE``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import correlation as corr
from .color import mix_color_moments
from .device import autocast
from .engines import ENGINE_MODELS, choose_engine, correlation, fits_student, full_alpha, has_model, student_id
from .engines import STUDENT_MODEL as STUDENT_MODEL_NAME
from .engines import TEACHER_MODEL as MODEL_NAME
from .errors import MethodError, PresetError
from .features import channel_correlation, mean_std, stylize_features
from .image import load_image, padding_to_multiple, pil_to_tensor, resize_long_side
from .manifest import Manifest, load_tensors, save_tensors
from .methods import MethodJob, StyleInput
from .student import Student, load_student
from .transformer import inference_dtype
from .vgg import VGG19, get_vgg

log = logging.getLogger(__name__)

ENCODER_LAYER = "relu4_1"
#: Layers of the paper's style loss (decoder training).
LOSS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: Style statistics kept in memory (each is 2 x 512 floats).
CACHE_SIZE = int(os.environ.get("STYLIZER_ADAIN_CACHE", "256"))
#: Long side style images are encoded at when the caller does not say (the facade passes style_size).
PRESET_STYLE_SIZE = 512


class Decoder(nn.Module):
    """Mirror of VGG-19 up to relu4_1 (naoto0804/pytorch-AdaIN ``net.decoder``).

    Nearest-neighbour upsampling followed by convolutions (no transposed convs: no checkerboard),
    reflection padding (no dark borders) and no normalisation layers (they would undo AdaIN).
    """

    #: (in, out, upsample after) per conv, the last conv has no ReLU
    PLAN: tuple[tuple[int, int, bool], ...] = (
        (512, 256, True),
        (256, 256, False), (256, 256, False), (256, 256, False), (256, 128, True),
        (128, 128, False), (128, 64, True),
        (64, 64, False), (64, 3, False),
    )

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout, up) in enumerate(self.PLAN):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            if i < len(self.PLAN) - 1:
                layers.append(nn.ReLU(inplace=True))
            if up:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def encoder(device: torch.device | str) -> nn.Sequential:
    """VGG-19 (shared, frozen) from RGB [0, 1] to relu4_1."""
    return get_vgg(device).slice_to(ENCODER_LAYER)


def load_decoder(manifest: Manifest, device: torch.device | str) -> Decoder:
    """The trained decoder from the manifest's ``[models.adain_decoder]``, verified by sha256."""
    entry = manifest.model(MODEL_NAME)
    return load_decoder_file(entry.file, device, entry.sha256)


def load_decoder_file(path: Path, device: torch.device | str, sha256: str = "",
                      what: str = "AdaIN decoder") -> Decoder:
    """A frozen decoder from a safetensors file (hash checked when given); a file for another network
    raises PresetError."""
    decoder = Decoder()
    try:
        decoder.load_state_dict(load_tensors(Path(path), sha256, what))
    except RuntimeError as exc:
        raise PresetError(f"{what} {Path(path).name} does not fit the network ({exc})") from exc
    return decoder.requires_grad_(False).eval().to(device)


def style_stats(vgg: VGG19, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """relu4_1 channel mean, std (1, C, 1, 1) and correlation (1, C, C) of a style picture (1, 3, H, W) in [0, 1],
    float32."""
    feat = vgg(style, [ENCODER_LAYER])[ENCODER_LAYER]
    return (*mean_std(feat), channel_correlation(feat))


def mix_stats(stats: Sequence[tuple[float, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mix of (weight, mean, std) targets; weights are normalised here too, to be safe."""
    total = sum(w for w, _, _ in stats)
    mean = sum(w / total * m for w, m, _ in stats)
    std = sum(w / total * s for w, _, s in stats)
    return mean, std  # type: ignore[return-value]


def make_preset_file(style: Path | str, out: Path, size: int = PRESET_STYLE_SIZE,
                     device: torch.device | str = "cpu", metadata: dict[str, str] | None = None,
                     manifest: Manifest | None = None) -> str:
    """Write an ``adain`` preset: relu4_1 mean/std of ``style`` at long side ``size`` for the VGG engine, and for
    the student when the manifest has one (with :func:`student_id`, since they hold for those weights only);
    returns sha256."""
    vgg = get_vgg(device)
    image = pil_to_tensor(resize_long_side(load_image(style), size), device)
    manifest = manifest or Manifest.default()
    with torch.inference_mode():
        mean, std, correlation_ = style_stats(vgg, image)
        # fp16 in the file, as everything save_tensors writes: the correlation's 512x512 make it 0.5 MB
        tensors = {"mean": mean.flatten(), "std": std.flatten(), "correlation": correlation_[0]}
        meta = {"method": "adain", "layer": ENCODER_LAYER, "style_size": str(size), "source": Path(style).name}
        if STUDENT_MODEL_NAME in manifest.models and manifest.model(STUDENT_MODEL_NAME).file.is_file():
            s_mean, s_std, *color = load_student(manifest, device).style_stats(_pad_to_multiple(image, 8))
            tensors.update(student_mean=s_mean.flatten(), student_std=s_std.flatten())
            if color:  # a recolouring student: the picture's RGB moments
                tensors.update(student_color_mean=color[0].flatten(), student_color_cov=color[1].flatten())
            meta["student"] = student_id(manifest)
    return save_tensors(tensors, Path(out), {**meta, **(metadata or {})})


@dataclass(frozen=True)
class Target:
    """What a job's pictures are drawn towards: its styles' statistics mixed by weight, in one engine's feature
    space (:meth:`AdaINMethod.target`)."""

    mean: torch.Tensor
    std: torch.Tensor
    #: the feature interpolation the job's strength stands for (:func:`stylizer.engines.full_alpha`)
    alpha: float
    #: the pooled RGB moments a recolouring student takes
    color: tuple[torch.Tensor, torch.Tensor] | None = None
    #: the teacher's correlated AdaIN (:func:`stylizer.features.adain`): the styles' mixed correlation root and the
    #: decoder's ``correlation`` weight; None when that weight is 0, and always for the student
    root: torch.Tensor | None = None
    correlation: float = 0.0


class AdaINMethod:
    """The ``adain`` method: fast arbitrary style transfer from any style picture(s) or ``adain`` presets."""

    name = "adain"
    description = "Fast, any style picture (AdaIN)"
    accepts_images = True
    slow = False
    #: normalises through stylizer.features, so full resolution can run tile by tile (stylizer.tiling)
    tileable = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoders: dict[tuple[str, str], Decoder] = {}
        self._students: dict[tuple[str, str, torch.dtype], Student] = {}
        self._stats: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()

    def available(self, manifest: Manifest) -> bool:
        return has_model(manifest, MODEL_NAME) or has_model(manifest, STUDENT_MODEL_NAME)

    def engine(self, job: MethodJob) -> str:
        """``student`` or ``vgg`` for this job (:func:`stylizer.engines.choose_engine`)."""
        return choose_engine(job.manifest, job.options.get("engine"),
                             [s.preset.file for s in job.styles if s.preset is not None])

    def student(self, manifest: Manifest, device: torch.device, dtype: torch.dtype = torch.float32) -> Student:
        """The student on ``device`` in ``dtype`` (loaded once per weights file, device and dtype)."""
        entry = manifest.model(STUDENT_MODEL_NAME)
        key = (str(entry.file), str(device), dtype)
        with self._lock:
            if key not in self._students:
                student = load_student(manifest, device).to(dtype)
                if device.type == "cpu":
                    student = student.to(memory_format=torch.channels_last)
                self._students[key] = student
            return self._students[key]

    def decoder(self, manifest: Manifest, device: torch.device) -> Decoder:
        """The decoder on ``device`` (loaded once per weights file and device)."""
        entry = manifest.model(MODEL_NAME)
        key = (str(entry.file), str(device))
        with self._lock:
            if key not in self._decoders:
                decoder = load_decoder(manifest, device)
                if device.type == "cpu":
                    decoder = decoder.to(memory_format=torch.channels_last)
                self._decoders[key] = decoder
            return self._decoders[key]

    # -- style statistics -------------------------------------------------------------------------
    def _cached(self, key: str) -> tuple[torch.Tensor, ...] | None:
        with self._lock:
            stats = self._stats.get(key)
            if stats is not None:
                self._stats.move_to_end(key)
            return stats

    def _store(self, key: str, stats: tuple[torch.Tensor, ...]) -> None:
        with self._lock:
            self._stats[key] = stats
            self._stats.move_to_end(key)
            while len(self._stats) > CACHE_SIZE:
                self._stats.popitem(last=False)

    def _ingredient(self, style: StyleInput, key: str, from_preset: Callable[[dict[str, torch.Tensor]], tuple],
                    from_image: Callable[[torch.Tensor], tuple]) -> tuple[torch.Tensor, ...]:
        """Tensors describing one style ingredient, from its preset file or its picture, cached on the CPU
        under ``key`` (empty: not cached). Both engines go through here; they differ only in what they read."""
        cached = self._cached(key) if key else None
        if cached is None:
            if style.preset is not None:
                if style.preset.method != self.name:
                    raise MethodError(f"preset {style.preset.name!r} is a {style.preset.method} preset, not adain")
                tensors = load_tensors(style.preset.file, style.preset.sha256, f"preset {style.preset.name}")
                try:
                    found = from_preset(tensors)
                except KeyError as exc:
                    raise PresetError(f"preset {style.preset.name}: file lacks {exc} (made for another engine?)"
                                      ) from exc
            elif style.image is not None:
                found = from_image(style.image)
            else:
                raise MethodError("a style input needs an image or a preset")
            cached = tuple(t.float().cpu() for t in found)
            if key:
                self._store(key, cached)
        return cached

    def stats_for(self, style: StyleInput, vgg: VGG19, device: torch.device,
                  mixed_precision: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """relu4_1 mean/std of one style ingredient for the VGG engine, and the square root of its channel
        correlation (None for a preset made before correlations were measured); cached by its key, so the root's
        eigendecomposition runs once per style."""
        def from_image(image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            with autocast(device, mixed_precision):
                mean, std, correlation_ = style_stats(vgg, _channels_last(image.to(device), device))
            return mean, std, correlation_root(correlation_)

        def from_preset(t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
            stats = (t["mean"].view(1, -1, 1, 1), t["std"].view(1, -1, 1, 1))
            return (*stats, correlation_root(t["correlation"])) if "correlation" in t else stats

        mean, std, *root = self._ingredient(style, style.key, from_preset, from_image)
        return mean.to(device), std.to(device), (root[0] if root else None)

    def student_stats_for(self, style: StyleInput, student: Student, device: torch.device, manifest: Manifest,
                          ) -> tuple[torch.Tensor, ...]:
        """Mean/std of one style ingredient at the student's relu4_1, and its RGB mean/covariance when the student
        recolours (:meth:`stylizer.student.Student.style_stats`; cached by its key)."""
        def from_image(image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            dtype = next(student.parameters()).dtype
            with torch.inference_mode():
                return student.style_stats(_channels_last(_pad_to_multiple(image.to(device, dtype), 8), device))

        if style.preset is not None and not fits_student(style.preset.file, manifest):
            raise PresetError(f"preset {style.preset.name!r} holds no statistics for this student's weights "
                              "(made before it): re-make the preset or use engine=vgg")
        def from_preset(t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
            stats = (t["student_mean"].view(1, -1, 1, 1), t["student_std"].view(1, -1, 1, 1))
            if student.recolor:
                stats += (t["student_color_mean"].view(1, 3, 1), t["student_color_cov"].view(1, 3, 3))
            return stats

        key = f"student:{student_id(manifest)}:{style.key}" if style.key else ""
        return tuple(t.to(device) for t in self._ingredient(style, key, from_preset, from_image))

    # -- inference --------------------------------------------------------------------------------
    def stylize_batch(self, content: torch.Tensor, target: Target, manifest: Manifest, device: torch.device,
                      mixed_precision: bool = True, engine: str = "vgg") -> torch.Tensor:
        """Stylize a batch (N, 3, H, W) of same-sized contents with one ``target`` (:meth:`target`, in the
        ``engine``'s feature space); returns [0, 1] float32. Batching same-sized images amortises per-call
        overhead.
        """
        mean, std, alpha = target.mean, target.std, target.alpha
        h, w = content.shape[-2:]
        x = _channels_last(_pad_to_multiple(content.to(device), 8), device)
        if engine == "student":
            dtype = inference_dtype(device, mixed_precision)
            student = self.student(manifest, device, dtype)
            with torch.inference_mode():
                out = student(x.to(dtype), mean, std, *(target.color or ()), alpha=alpha)
            return out[..., :h, :w].float().clamp(0, 1)
        vgg, decoder = get_vgg(device), self.decoder(manifest, device)
        with torch.inference_mode(), autocast(device, mixed_precision):
            f_c = vgg(x, [ENCODER_LAYER])[ENCODER_LAYER]
            t = stylize_features(f_c, mean, std, alpha, target.root, target.correlation)
            out = decoder(t)
        return out[..., :h, :w].float().clamp(0, 1)

    def target(self, job: MethodJob, engine: str) -> Target:
        """A job's :class:`Target`: its styles' statistics mixed by weight, in ``engine``'s feature space."""
        if engine == "student":
            student = self.student(job.manifest, job.device, inference_dtype(job.device, job.mixed_precision))
            stats_of = partial(self.student_stats_for, student=student, device=job.device,
                               manifest=job.manifest)
        else:
            stats_of = partial(self.stats_for, vgg=get_vgg(job.device), device=job.device,
                               mixed_precision=job.mixed_precision)
        stats = []
        for i, style in enumerate(job.styles):
            stats.append((style.weight, *stats_of(style)))
            job.report("style", i + 1, len(job.styles))
        mean, std = mix_stats([s[:3] for s in stats])
        alpha = job.strength * full_alpha(job.manifest, ENGINE_MODELS[engine])
        if engine == "student":
            return Target(mean, std, alpha, color=mix_color_moments([(s[0], *s[3:]) for s in stats])
                          if len(stats[0]) == 5 else None)
        weight = correlation(job.manifest)
        root = corr.mixed_root([(w, None if r is None else r.numpy()) for w, _, _, r in stats]) if weight else None
        if root is None:
            return Target(mean, std, alpha)
        return Target(mean, std, alpha, root=torch.from_numpy(root).to(job.device), correlation=weight)

    def run(self, job: MethodJob) -> torch.Tensor:
        engine = self.engine(job)
        out = self.stylize_batch(job.content, self.target(job, engine), job.manifest, job.device,
                                 job.mixed_precision, engine)
        job.report("decode", 1, 1)
        return out


def correlation_root(correlation_: torch.Tensor) -> torch.Tensor:
    """:func:`stylizer.correlation.root` of a (1, C, C) or (C, C) correlation, as a float32 CPU tensor (C, C): the
    ``root`` correlated AdaIN (:func:`stylizer.features.adain`) takes, for the engine, its trainers and calibration."""
    c = correlation_.shape[-1]
    return torch.from_numpy(corr.root(correlation_.detach().float().cpu().numpy().reshape(c, c)))


def _channels_last(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """NHWC is oneDNN's fast layout for convs on the CPU (measured in bench/adain.py)."""
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad so both sides divide by ``multiple``: three poolings then three upsamplings keep the size."""
    ph, pw, reflect = padding_to_multiple(*x.shape[-2:], multiple)
    if not (ph or pw):
        return x
    return nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if reflect else "replicate")
