"""Train the AdaIN student (:mod:`stylizer.student`) on the CPU, resumably: ``python -m stylizer train-student``.

Four commands on one work folder (``--work``), each resumable and bounded by ``--max-minutes``:

* ``cache``: the teacher (VGG-19 + our decoder at alpha ``--alpha``) stylizes random (photo crop, style
  crop) pairs once; shards of uint8 pictures plus the style crops' VGG statistics land in ``WORK/cache``.
  Phase B then never runs the teacher's decoder, and the cache is reused across sessions.
* ``a`` (encoder): the student encoder's features, mapped by trainable 1x1 embeddings, regress onto VGG's at
  relu1_1..relu4_1 (plus their channel mean/std, plus reconstruction of the picture through our *frozen*
  decoder from the embedded relu4_1), on photos and style pictures alike: the encoder measures styles too.
* ``b`` (decoder): the encoder is frozen; the decoder learns from the cached teacher outputs (pixels and
  VGG relu1_1/relu2_1) mixed with AdaIN's own losses (the output's student relu4_1 should equal the AdaIN
  target; its VGG mean/std at four layers should equal the style's): the own losses let it go past a
  teacher that under-styles textures (issue 11, bench/adain_kinds.py).
* ``c`` (end to end): encoder and decoder train together on AdaIN's own objective in *VGG's* space, the one
  our teacher decoder was trained on (:func:`stylizer.losses.adain_targets`: the output's VGG relu4_1
  should equal VGG-AdaIN's target, its VGG mean/std at relu1_1..relu5_1 the style's), with the teacher's
  picture as a light L1 anchor. No cache: the targets come from VGG on the fly (cheap in bf16 on AMX). It
  starts from phase B's checkpoint or ``--from-student``. Phases A and B measure the student against the
  teacher's intermediate results; C measures it on what the brief's metrics measure, so the student may go
  where the teacher's own losses point rather than stop at a blurred copy of its pictures.

Style data (:class:`~stylizer.train.pool.StylePool`): paintings (augmented: crops at several scales, flips,
rotations, colour jitter), photos as styles, procedural textures coloured with paintings' palettes, and pictures
PyPI packages ship (``--extra-styles``, see scripts/pypi_styles). Named paintings and extra pictures, and texture seeds
below 10000, are held out for validation: a fixed grid of held-out photos x held-out styles of every kind,
medians of content_err / style_gap logged at each checkpoint (every ``--checkpoint-minutes``). The best
checkpoint by the issue's bar is written to ``WORK/best_{phase}.safetensors`` with its figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .. import image as img
from ..adain import load_decoder
from ..color import match_color_moments
from ..device import autocast, resolve_device
from ..errors import StylizerError
from ..features import mean_std, stylize_features
from ..losses import adain_feature_losses, adain_targets, mean_std_loss
from ..manifest import Manifest, save_tensors
from ..metrics import quality
from ..student import (
    TAPS,
    VGG_WIDTHS,
    Student,
    StudentArch,
    keep_filters,
    load_student_file,
    pruned_from_teacher,
    vgg_encoder_state,
    widened,
)
from ..vgg import LAYER_SCALE, STYLE_LAYERS, get_vgg, load_state_dict
from .data import random_crop, resize_short_side, split_content, to_tensor
from .loop import Loop, config_dict, write_state
from .pool import StylePool

log = logging.getLogger(__name__)

#: The issue's bar: median style_gap <= 0.45 at content_err <= 0.62.
BAR = {"style_gap": 0.45, "content_err": 0.62}
SHARD = 50


@dataclass
class StudentConfig:
    phase: str  # "cache", "a", "b" or "c"
    content_dir: Path
    style_dir: Path
    work: Path
    extra_styles: Path | None = None
    from_student: Path | None = None  # start (when WORK has no checkpoint) from these shipped weights
    steps: int = 4000
    batch: int = 4
    crop: int = 256
    lr: float | None = None  # default: 2e-4 (a), 1e-4 (b)
    warmup: int = 100  # steps over which a fresh optimiser's lr ramps up (a least-squares start is easily undone)
    alpha: float = 1.0  # the teacher's feature interpolation in the cache and the student's in phase B
    pairs: int = 1500  # teacher outputs in the cache
    max_minutes: float | None = None
    checkpoint_minutes: float = 8.0
    log_every: int = 25
    seed: int = 0
    device: str = "auto"
    widths: tuple[int, int, int, int] = StudentArch().widths
    #: the decoder's own widths (issue 32's light decoder: ``widths`` = VGG's, so the encoder is the teacher's exact
    #: VGG-19, and the decoder at half width); None: the encoder's
    decoder_widths: tuple[int, int, int, int] | None = None
    #: decoder skips with AdaIN at relu1_1..relu3_1 (:class:`stylizer.student.StudentArch`); a file without them
    #: grows them as the same function
    skips: bool = False
    #: learning-rate factor for the skip projections (they start at zero and have the most to learn)
    skip_lr: float = 10.0
    val_size: int = 320
    val_photos: int = 3
    #: phase c: train (and validate) with the output recoloured to the style's RGB moments, as the engine then
    #: ships it (:attr:`stylizer.student.Student.recolor`); the decoder spends no capacity on the palette
    recolor: bool = False
    #: phase c with VGG-19 itself as the encoder (``widths`` = VGG's): train on the teacher cache with the frozen
    #: encoder's outputs (content relu4_1, the style's statistics at every loss layer) computed once, so a step
    #: runs only the decoder and VGG on its output
    cached: bool = False
    weights: dict[str, float] = field(default_factory=dict)  # empty: PHASE_WEIGHTS of the phase

    def __post_init__(self) -> None:
        self.weights = {**PHASE_WEIGHTS.get(self.phase, {}), **self.weights}


#: Loss weights per phase. b: distillation (pixel, perceptual) leads and the own AdaIN terms (content, style)
#: refine; with style at 10 a CPU run's first hundreds of steps undid the least-squares start. c: AdaIN's own
#: objective in VGG space (what the teacher decoder was trained on, style at relu1_1..relu5_1 as the brief's
#: style_gap measures it) leads, and the teacher's picture (pixel) only keeps the output clean.
PHASE_WEIGHTS = {"b": {"pixel": 10.0, "perceptual": 2.0, "content": 1.0, "style": 2.0},
                 "c": {"pixel": 1.0, "content": 1.0, "style": 10.0, "perceptual": 0.0}}


# --- data ---------------------------------------------------------------------------------------------------------

def _content_crop(path: Path, crop: int, rng: random.Random, cache: dict[Path, Image.Image]) -> Image.Image:
    if path not in cache:
        cache[path] = resize_short_side(img.load_image(path).convert("RGB"), crop)
    return random_crop(cache[path], crop, rng)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# --- the teacher cache ----------------------------------------------------------------------------------------------

def build_cache(cfg: StudentConfig) -> int:
    """Fill ``WORK/cache`` up to ``cfg.pairs`` teacher outputs (whole shards; existing shards are kept)."""
    device = resolve_device(cfg.device)
    out_dir = cfg.work / "cache"
    out_dir.mkdir(parents=True, exist_ok=True)
    vgg = get_vgg(device)
    decoder = load_decoder(Manifest.default(), device)
    pool = StylePool(cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles)
    photos, _ = split_content(cfg.content_dir)
    contents: dict[Path, Image.Image] = {}
    loop = Loop("teacher cache", steps=-(-cfg.pairs // SHARD), max_minutes=cfg.max_minutes, log_every=1,
                checkpoint_minutes=math.inf)
    done = len(list(out_dir.glob("shard_*.pt")))

    def shard(i: int) -> dict[str, float]:
        rng = random.Random(cfg.seed * 1_000_003 + i)
        c = torch.stack([to_tensor(_content_crop(rng.choice(photos), cfg.crop, rng, contents)) for _ in range(SHARD)])
        kinds, styles = zip(*(pool.sample(rng) for _ in range(SHARD)), strict=True)
        s = torch.stack([to_tensor(p) for p in styles])
        teacher, stats = [], {f"{k}.{t}": [] for t in TAPS for k in ("mean", "std")}
        with torch.no_grad(), autocast(device):
            for j in range(0, SHARD, 10):
                cj, sj = c[j:j + 10].to(device), s[j:j + 10].to(device)
                f_s = vgg(sj, TAPS)
                s_stats = {t: mean_std(f_s[t]) for t in TAPS}
                for t, (m, sd) in s_stats.items():
                    stats[f"mean.{t}"].append(m.flatten(1).half().cpu())
                    stats[f"std.{t}"].append(sd.flatten(1).half().cpu())
                f_c = vgg(cj, ["relu4_1"])["relu4_1"]
                teacher.append(_u8(decoder(stylize_features(f_c, *s_stats["relu4_1"], cfg.alpha)).float()).cpu())
        record = {"content": _u8(c), "style": _u8(s), "teacher": torch.cat(teacher), "kinds": list(kinds),
                  "alpha": cfg.alpha, **{k: torch.cat(v) for k, v in stats.items()}}
        write_state(out_dir / f"shard_{i:04d}.pt", record)
        return {"pairs": float((i + 1) * SHARD)}

    return loop.run(shard, done, lambda step: None) * SHARD


class TeacherCache:
    """Random batches from the cache shards (kept in memory as uint8: 1500 pairs at 256 px ~ 0.9 GB)."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        files = sorted(folder.glob("shard_*.pt"))
        if not files:
            raise StylizerError(f"no teacher cache in {folder}: run `train-student cache` first")
        shards = [torch.load(f, weights_only=True) for f in files]
        self.data = {k: torch.cat([s[k] for s in shards]) for k in shards[0] if isinstance(shards[0][k], torch.Tensor)}
        self.alpha = float(shards[0]["alpha"])
        self.n = len(self.data["content"])
        self.device = device
        log.info("teacher cache: %d pairs from %d shards (alpha %.2f)", self.n, len(files), self.alpha)

    def batch(self, size: int, gen: torch.Generator, crop: int | None = None) -> dict[str, torch.Tensor]:
        """``size`` random pairs; content and teacher output share one random flip and ``crop`` window
        (the style stays whole: its statistics were measured on all of it)."""
        idx = torch.randint(0, self.n, (size,), generator=gen)
        flip = bool(torch.randint(0, 2, (), generator=gen))
        side = self.data["content"].shape[-1]
        crop = min(crop or side, side)
        y, x0 = (int(torch.randint(0, side - crop + 1, (), generator=gen)) for _ in range(2))
        out = {}
        for k, v in self.data.items():
            x = v[idx]
            if x.dtype == torch.uint8:
                x = x.float().div_(255)
                if k != "style":  # content and its teacher output move together
                    x = x[..., y:y + crop, x0:x0 + crop]
                    x = x.flip(-1) if flip else x
            out[k] = x.float().to(self.device)
        return out


class FeatureCache:
    """The teacher cache seen through the frozen VGG encoder, for phase c when the encoder *is* VGG-19: each
    pair's content relu4_1 and its style's (mean, std) at every loss layer, computed once (``cache/features.pt``,
    rebuilt when the shard count changes) and held as fp16 (~1 MB a pair at 256 px). A step then costs the decoder
    and VGG on its output only; the price is no crop or flip (the features are of the whole cached crop)."""

    def __init__(self, cache: TeacherCache, vgg, folder: Path, device: torch.device, chunk: int = 25) -> None:
        path = folder / "features.pt"
        state = torch.load(path, weights_only=True) if path.is_file() else None
        if state is None or int(state["n"]) != cache.n:
            feats: dict[str, list[torch.Tensor]] = {"f_c": []}
            with torch.no_grad(), autocast(device):
                for i in range(0, cache.n, chunk):
                    c = cache.data["content"][i:i + chunk].float().div(255).to(device)
                    s = cache.data["style"][i:i + chunk].float().div(255).to(device)
                    feats["f_c"].append(vgg(c, ["relu4_1"])["relu4_1"].half().cpu())
                    for k, v in vgg(s, STYLE_LAYERS).items():
                        m, sd = mean_std(v.float())
                        feats.setdefault(f"mean.{k}", []).append(m.flatten(1).half().cpu())
                        feats.setdefault(f"std.{k}", []).append(sd.flatten(1).half().cpu())
            state = {"n": cache.n, **{k: torch.cat(v) for k, v in feats.items()}}
            write_state(path, state)
            log.info("feature cache: %d pairs through VGG -> %s", cache.n, path)
        self.feats = {k: v for k, v in state.items() if k != "n"}
        self.cache, self.device = cache, device

    def batch(self, size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """``size`` random pairs: ``f_c``, the style's raw ``mean.<layer>``/``std.<layer>`` (N, C), ``teacher``."""
        idx = torch.randint(0, self.cache.n, (size,), generator=gen)
        out = {k: v[idx].float().to(self.device) for k, v in self.feats.items()}
        out["teacher"] = self.cache.data["teacher"][idx].float().div_(255).to(self.device)
        return out


# --- the student, its embeddings, checkpoints -------------------------------------------------------------------

class Embeddings(nn.Module):
    """1x1 maps from the student's features onto VGG's at each tap (training only), started as the pruning's
    channel selection: student channel i lands on the VGG channel it was cut from."""

    def __init__(self, arch: StudentArch, kept: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.maps = nn.ModuleDict({t: nn.Conv2d(w, vw, 1) for t, w, vw in zip(TAPS, arch.widths, VGG_WIDTHS,
                                                                                  strict=True)})
        if kept is not None:
            with torch.no_grad():
                for t, conv in self.maps.items():
                    conv.weight.zero_()
                    conv.bias.zero_()
                    conv.weight[kept[t], torch.arange(len(kept[t])), 0, 0] = 1.0

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t: self.maps[t](f) for t, f in feats.items()}


def _sample_images(cfg: StudentConfig, n: int, side: int = 128) -> torch.Tensor:
    """``n`` pictures, half photos, half style pictures, for fitting the embeddings at the start."""
    rng = random.Random(cfg.seed)
    photos, _ = split_content(cfg.content_dir)
    pool, cache = StylePool(cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles), {}
    out = [to_tensor(_content_crop(rng.choice(photos), side, rng, cache)) for _ in range(n - n // 2)]
    out += [to_tensor(pool.sample(rng)[1].resize((side, side))) for _ in range(n // 2)]
    return torch.stack(out)


def fit_embeddings(student: Student, embed: Embeddings, images: torch.Tensor) -> None:
    """Least-squares 1x1 maps from the (pruned) student's features onto VGG's on ``images``: phase A then starts
    from the best linear stand-in for the channels pruning removed instead of zeros."""
    vgg = get_vgg("cpu")
    with torch.no_grad():
        f, v = student.encoder(images, TAPS), vgg(images, TAPS)
        for t in TAPS:
            x = f[t].permute(0, 2, 3, 1).reshape(-1, f[t].shape[1]).double()
            y = v[t].permute(0, 2, 3, 1).reshape(-1, v[t].shape[1]).double()
            x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
            # ridge normal equations, not lstsq: a pruned student has dead channels, and on a rank-deficient
            # system lstsq's rank decision (threaded BLAS rounding) picked a different solution run to run
            gram = x1.T @ x1
            ridge = 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram + ridge, x1.T @ y)  # (C_s + 1, C_v)
            conv = embed.maps[t]
            conv.weight.copy_(sol[:-1].T.float()[..., None, None])
            conv.bias.copy_(sol[-1].float())


def _teacher_preactivations(teacher, t: torch.Tensor) -> list[torch.Tensor]:
    """Each conv's output (before its ReLU) of the teacher decoder (:class:`stylizer.adain.Decoder`) on ``t``."""
    outs, x = [], t
    for module in teacher.net:
        x = module(x)
        if isinstance(module, nn.Conv2d):
            outs.append(x)
    return outs


def refit_decoder(student: Student, teacher, vgg, content: torch.Tensor, style: torch.Tensor, alpha: float,
                  ridge: float = 1e-3, max_rows: int = 60_000) -> list[float]:
    """Start the student's decoder as a layer-by-layer least-squares copy of the teacher's (reconstruction-based
    channel pruning, He et al. 2017): each layer keeps the teacher's largest-norm filters and its weights are
    solved so that, fed the *student's* own previous layer, it reproduces the teacher's pre-activations of those
    filters on real AdaIN targets. Filter selection alone (:func:`pruned_from_teacher`) drops 3/4 of each layer's
    inputs and starts from a picture far from the teacher's; this starts next to it. Returns each layer's
    relative residual."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        f_v = vgg(content, ["relu4_1"])["relu4_1"]
        m, sd = mean_std(vgg(style, ["relu4_1"])["relu4_1"])
        targets = _teacher_preactivations(teacher, stylize_features(f_v, m, sd, alpha))
        f_s = student.encoder(content)["relu4_1"]
        m, sd = student.style_stats(style)[:2]
        x = stylize_features(f_s, m, sd, alpha)
        residuals = []
        teacher_convs = [m for m in teacher.net if isinstance(m, nn.Conv2d)]
        last = len(student.decoder.convs) - 1
        for i, (conv, up) in enumerate(zip(student.decoder.convs, student.decoder.up, strict=True)):
            z = targets[i]
            keep = torch.arange(z.shape[1]) if i == last else keep_filters(teacher_convs[i].weight, conv.out_channels)
            per = max(1, max_rows // len(x))
            a_parts, y_parts = [], []
            for n in range(len(x)):  # one picture at a time: unfolded 3x3 patches of a batch would not fit
                cols = F.unfold(F.pad(x[n:n + 1], [1, 1, 1, 1], mode="reflect"), 3)[0].T  # (H*W, C*9)
                rows = torch.randperm(len(cols), generator=gen)[:per]
                a_parts.append(cols[rows].double())
                y_parts.append(z[n, keep].flatten(1).T[rows].double())
            a, y = torch.cat(a_parts), torch.cat(y_parts)
            a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1)
            gram = a.T @ a
            gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram, a.T @ y)  # (C*9 + 1, k)
            conv.weight.copy_(sol[:-1].T.reshape(conv.weight.shape).float())
            conv.bias.copy_(sol[-1].float())
            x = conv(F.pad(x, [1, 1, 1, 1], mode="reflect"))
            residuals.append(float(((x - z[:, keep]) ** 2).mean() / (z[:, keep] ** 2).mean()))
            if i < last:
                x = F.relu(x)
            if up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
    return residuals


def _ckpt(cfg: StudentConfig, phase: str) -> Path:
    return cfg.work / f"phase_{phase}.ckpt"


def _start(cfg: StudentConfig, device: torch.device) -> tuple[Student, Embeddings, dict | None]:
    """The student (and embeddings) this phase starts from: its own checkpoint, else phase A's (for B), else
    the pruned teacher."""
    arch = StudentArch(tuple(cfg.widths), cfg.skips, cfg.decoder_widths)  # type: ignore[arg-type]
    own = _ckpt(cfg, cfg.phase)
    before = {"b": _ckpt(cfg, "a"), "c": _ckpt(cfg, "b")}.get(cfg.phase)
    source = own if own.is_file() else (before if before is not None and before.is_file() else None)
    if source is None and cfg.from_student is not None:
        # a fresh machine: go on from the committed weights (the embeddings are only a training device, refitted)
        student = load_student_file(cfg.from_student)
        wider = StudentArch(tuple(max(a, b) for a, b in zip(arch.widths, student.arch.widths, strict=True)),
                            arch.skips or student.arch.skips, student.arch.decoder_widths)
        if wider != student.arch:  # --widths / --skips ask for more than the file has: grow it, same function
            log.info("growing %s -> %s", student.arch, wider)
            student = widened(student, wider, torch.Generator().manual_seed(cfg.seed))
        student = student.requires_grad_(True).train()
        embed = Embeddings(student.arch)
        fit_embeddings(student, embed, _sample_images(cfg, 16))
        log.info("%s starts from %s", cfg.phase, cfg.from_student)
        return student.to(device), embed.to(device), None
    if source is None and cfg.phase == "b" and tuple(arch.widths) == VGG_WIDTHS:
        # the encoder is VGG-19 itself (nothing for phase A to learn): the pruned teacher with its decoder refitted
        decoder = load_decoder(Manifest.default(), device)
        student, kept = pruned_from_teacher(load_state_dict(), decoder.state_dict(), arch)
        student = student.to(device)
        batch = TeacherCache(cfg.work / "cache", device).batch(32, torch.Generator().manual_seed(cfg.seed))
        residuals = refit_decoder(student, decoder, get_vgg(device), batch["content"], batch["style"], cfg.alpha)
        log.info("decoder refitted to the teacher layer by layer (VGG encoder), relative residuals %s",
                 " ".join(f"{r:.3f}" for r in residuals))
        return student, Embeddings(arch, kept).to(device), None
    if source is None:
        if before is not None:
            raise StylizerError(f"phase {cfg.phase} starts from the phase before it or --from-student: no {before}")
        decoder = load_decoder(Manifest.default(), "cpu")
        student, kept = pruned_from_teacher(load_state_dict(), decoder.state_dict(), arch)
        embed = Embeddings(arch, kept)
        fit_embeddings(student, embed, _sample_images(cfg, 16))
        return student.to(device), embed.to(device), None
    state = torch.load(source, map_location=device, weights_only=True)
    student = Student(StudentArch.from_json(state["arch"]) if "arch" in state
                      else StudentArch(tuple(state["widths"]))).to(device)
    student.load_state_dict(state["student"])
    embed = Embeddings(student.arch).to(device)
    embed.load_state_dict(state["embed"])
    log.info("%s starts from %s (step %d)", cfg.phase, source.name, state["step"])
    if source != own and cfg.phase == "b" and cfg.from_student is None:  # a new decoder on phase A's encoder
        batch = TeacherCache(cfg.work / "cache", device).batch(32, torch.Generator().manual_seed(cfg.seed))
        residuals = refit_decoder(student, load_decoder(Manifest.default(), device), get_vgg(device),
                                  batch["content"], batch["style"], cfg.alpha)
        log.info("decoder refitted to the teacher layer by layer, relative residuals %s",
                 " ".join(f"{r:.3f}" for r in residuals))
    return student, embed, state if source == own else None


def export(student: Student, path: Path, meta: dict[str, str]) -> str:
    """The shipped form: fp16 safetensors of encoder + decoder, architecture and figures in the metadata; an encoder
    that is VGG-19's own weights, untouched, is left out (:func:`stylizer.student.load_student_file` puts it back)."""
    state = student.state_dict()
    vgg = vgg_encoder_state(student)
    if vgg is not None and all(torch.equal(state[k].cpu(), v) for k, v in vgg.items()):
        state = {k: v for k, v in state.items() if k not in vgg}
    return save_tensors(state, path, {"arch": student.arch.to_json(),
                                      "recolor": "true" if student.recolor else "false", **meta})


# --- validation ------------------------------------------------------------------------------------------------------

class Validator:
    """Medians of content_err / style_gap on held-out photos x held-out styles of every kind (fixed grid)."""

    def __init__(self, cfg: StudentConfig, device: torch.device) -> None:
        _, held = split_content(cfg.content_dir)
        size = cfg.val_size

        def load(pil: Image.Image) -> torch.Tensor:
            return img.pil_to_tensor(img.resize_long_side(pil.convert("RGB"), size), device)

        def multiple_of_8(x: torch.Tensor) -> torch.Tensor:  # the student's three poolings
            h, w = (s - s % 8 for s in x.shape[-2:])
            return x[..., :h, :w]

        self.photos = [multiple_of_8(load(img.load_image(p))) for p in held[:cfg.val_photos]]
        self.styles = [(kind, name, load(pil)) for kind, name, pil in StylePool(
            cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles).validation_styles()]
        self.best_path = cfg.work / f"best_{cfg.phase}.safetensors"
        self.best_file = cfg.work / f"best_{cfg.phase}.json"
        self.best = json.loads(self.best_file.read_text())["score"] if self.best_file.is_file() else float("inf")

    def __call__(self, stylize, student: Student, step: int) -> dict:
        if not self.photos:  # a folder too small to hold photos out (tests): nothing honest to measure
            return {}
        rows: dict[str, list[dict[str, float]]] = {}
        with torch.no_grad():
            for kind, _, style in self.styles:
                for photo in self.photos:
                    out = stylize(photo, style).clamp(0, 1)
                    rows.setdefault(kind, []).append(quality(out, photo, style))
        every = [q for v in rows.values() for q in v]
        figures = {k: {m: round(statistics.median(q[m] for q in v), 4) for m in BAR} for k, v in rows.items()}
        figures["all"] = {m: round(statistics.median(q[m] for q in every), 4) for m in BAR}
        score = max(figures["all"][m] / BAR[m] for m in BAR)
        figures["score"] = round(score, 4)
        if score < self.best:
            self.best = score
            export(student, self.best_path, {"step": str(step), "validation": json.dumps(figures)})
            self.best_file.write_text(json.dumps({"score": score, "step": step, "figures": figures}, indent=1))
            figures["best"] = True
        return figures


# --- phases ---------------------------------------------------------------------------------------------------------

def _scaled(feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {t: f.float() / LAYER_SCALE[t] for t, f in feats.items()}


def phase_a_losses(student: Student, embed: Embeddings, vgg, teacher_decoder, x: torch.Tensor,
                   ) -> dict[str, torch.Tensor]:
    """Phase A's objective on pictures ``x``: embedded student features regress onto VGG's (``feat``), with
    their channel statistics (``stats``) and a reconstruction through the frozen teacher decoder (``rec``)."""
    with torch.no_grad(), autocast(x.device):
        v = _scaled(vgg(x, TAPS))
    with autocast(x.device):
        e = _scaled(embed(student.encoder(x, TAPS)))
        feat = sum(F.mse_loss(e[t], v[t]) for t in TAPS)
        stats = sum(mean_std_loss(e[t], *mean_std(v[t])) for t in TAPS)
        rec = F.mse_loss(teacher_decoder(e["relu4_1"] * LAYER_SCALE["relu4_1"]).float(), x)
    return {"loss": feat + stats + 10 * rec, "feat": feat, "stats": stats, "rec": rec}  # type: ignore[dict-item]


def phase_b_losses(student: Student, vgg, b: dict[str, torch.Tensor], alpha: float, w: dict[str, float],
                   ) -> dict[str, torch.Tensor]:
    """Phase B's objective on a teacher-cache batch ``b``: the decoder against the teacher's picture (``pixel``,
    low-level ``perceptual``) and AdaIN's own ``content`` (in the student's space) and ``style`` terms."""
    device = b["content"].device
    with torch.no_grad(), autocast(device):
        m, sd = student.style_stats(b["style"])[:2]
        t, skips = student.targets(b["content"], m, sd, alpha)
        v_t = _scaled(vgg(b["teacher"], TAPS[:2]))
    with autocast(device):
        out = student.decoder(t, skips)
        v_o = _scaled(vgg(out, TAPS))
        pixel = F.l1_loss(out.float(), b["teacher"])
        perceptual = sum(F.mse_loss(v_o[k], v_t[k]) for k in TAPS[:2])
        # relative to the target's energy: the student's relu4_1 lives on its own scale, not VGG's
        # (an encoder that is VGG-19 itself has its relu4_1 of the output in v_o already)
        f4 = (v_o["relu4_1"] * LAYER_SCALE["relu4_1"] if student.arch.widths == VGG_WIDTHS
              else student.encoder(out)["relu4_1"].float())
        content = F.mse_loss(f4, t.float()) / t.float().pow(2).mean()
        style = sum(mean_std_loss(v_o[k], b[f"mean.{k}"][..., None, None] / LAYER_SCALE[k],
                                  b[f"std.{k}"][..., None, None] / LAYER_SCALE[k]) for k in TAPS)
    loss = w["pixel"] * pixel + w["perceptual"] * perceptual + w["content"] * content + w["style"] * style
    return {"loss": loss, "pixel": pixel, "perceptual": perceptual, "content": content,  # type: ignore[dict-item]
            "style": style}


def train_phase(cfg: StudentConfig) -> int:
    """Run phase ``a`` or ``b`` from its checkpoint (or its start) to ``cfg.steps``; returns the last step."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    vgg = get_vgg(device)
    student, embed, state = _start(cfg, device)
    teacher_decoder = load_decoder(Manifest.default(), device)
    if cfg.phase == "a":
        params = [*student.encoder.parameters(), *embed.parameters()]
        lr = cfg.lr or 2e-4
    elif cfg.phase == "c" and not cfg.cached:
        params = list(student.parameters())
        lr = cfg.lr or 1e-4
    else:
        student.encoder.requires_grad_(False)
        params = list(student.decoder.parameters())
        lr = cfg.lr or 1e-4
    skip_params = {id(q) for q in student.decoder.skips.parameters()}
    groups = [{"params": [q for q in params if id(q) not in skip_params], "scale": 1.0}]
    if any(id(q) in skip_params for q in params):
        groups.append({"params": list(student.decoder.skips.parameters()), "scale": cfg.skip_lr})
    opt = torch.optim.Adam(groups, lr=lr)
    step = 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
    first = step
    warmup = cfg.warmup if state is None else 0  # a fresh Adam takes full-size steps at once: ramp them up

    def lr_at(i: int) -> float:
        return lr / (1 + 2e-4 * i) * (min(1.0, (i - first + 1) / warmup) if warmup else 1.0)

    def set_lr(i: int) -> None:
        # each group at its own factor of the schedule (the skips' --skip-lr); a checkpoint from before the groups
        # had factors restores groups without one
        for g in opt.param_groups:
            g["lr"] = lr_at(i) * g.get("scale", 1.0)

    gen = torch.Generator().manual_seed(cfg.seed + step)
    rng = random.Random(cfg.seed * 7919 + step)
    validator = Validator(cfg, device)
    w = cfg.weights

    if cfg.phase == "a":
        pool = StylePool(cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles)
        photos, _ = split_content(cfg.content_dir)
        contents: dict[Path, Image.Image] = {}

        def step_fn(i: int) -> dict[str, torch.Tensor]:
            set_lr(i)
            half = cfg.batch // 2
            x = torch.stack([to_tensor(_content_crop(rng.choice(photos), cfg.crop, rng, contents))
                             for _ in range(cfg.batch - half)] + [to_tensor(pool.sample(rng)[1]) for _ in range(half)])
            losses = phase_a_losses(student, embed, vgg, teacher_decoder, x.to(device))
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            return {k: v.detach() for k, v in losses.items()}

        def stylize(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            f_c = embed(student.encoder(c))["relu4_1"]
            m, sd = mean_std(embed(student.encoder(s))["relu4_1"])
            return teacher_decoder(stylize_features(f_c, m, sd, cfg.alpha))
    elif cfg.phase == "c" and cfg.cached:
        if student.arch.widths != VGG_WIDTHS or student.arch.skips or student.recolor:
            raise StylizerError("--cached needs VGG-19 as the encoder (--widths 64 128 256 512), no skips, no recolour")
        student.encoder.requires_grad_(False)
        features = FeatureCache(TeacherCache(cfg.work / "cache", device), vgg, cfg.work / "cache", device)

        def step_fn(i: int) -> dict[str, torch.Tensor]:
            set_lr(i)
            b = features.batch(cfg.batch, gen)
            targets = {k: (b[f"mean.{k}"][..., None, None] / LAYER_SCALE[k],
                           b[f"std.{k}"][..., None, None] / LAYER_SCALE[k]) for k in STYLE_LAYERS}
            with autocast(device):
                t = stylize_features(b["f_c"], b["mean.relu4_1"][..., None, None], b["std.relu4_1"][..., None, None],
                                     1.0)
                out = student.decoder(t)
                content, style = adain_feature_losses(vgg(out, STYLE_LAYERS), t.float(), targets)
                pixel = F.l1_loss(out.float(), b["teacher"])
            loss = w["pixel"] * pixel + w["content"] * content + w["style"] * style
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.detach(), "pixel": pixel.detach(), "content": content.detach(),
                    "style": style.detach()}

        def stylize(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return student.stylize(c, s, alpha=cfg.alpha)
    elif cfg.phase == "c":
        student.recolor = cfg.recolor or student.recolor  # a recolouring file goes on recolouring
        pool = StylePool(cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles)
        photos, _ = split_content(cfg.content_dir)
        contents = {}

        def step_fn(i: int) -> dict[str, torch.Tensor]:
            set_lr(i)
            c = torch.stack([to_tensor(_content_crop(rng.choice(photos), cfg.crop, rng, contents))
                             for _ in range(cfg.batch)]).to(device)
            s = torch.stack([to_tensor(pool.sample(rng)[1]) for _ in range(cfg.batch)]).to(device)
            with autocast(device):
                t, targets = adain_targets(vgg, c, s, STYLE_LAYERS)
                with torch.no_grad():
                    teacher = teacher_decoder(t).float()
                    v_t = _scaled(vgg(teacher, TAPS)) if w["perceptual"] else {}
                stats = student.style_stats(s)
                out = student(c, *stats[:2], alpha=1.0)
                # every term judges what ships: the recoloured picture. (An anchor on the raw decoder output
                # let it drift off [0, 1] once skips could carry the picture: L1 0.18 -> 1.2 in 150 steps.)
                shown = match_color_moments(out, *stats[2:]) if student.recolor else out
                f_o = vgg(shown, STYLE_LAYERS)
                content, style = adain_feature_losses(f_o, t, targets)
                pixel = F.l1_loss(shown.float(), teacher)
                # the teacher's picture in VGG's eyes, feature by feature at relu1_1..relu4_1: a dense target
                # (every position) where the statistics terms give one number per channel and batch
                v_o = _scaled({k: f_o[k] for k in v_t})
                perceptual = sum((F.mse_loss(v_o[k], v_t[k]) for k in v_t), torch.zeros((), device=device))
            loss = w["pixel"] * pixel + w["content"] * content + w["style"] * style + w["perceptual"] * perceptual
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.detach(), "pixel": pixel.detach(), "content": content.detach(),
                    "style": style.detach(), "perceptual": perceptual.detach()}

        def stylize(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return student.stylize(c, s, alpha=cfg.alpha)
    else:
        cache = TeacherCache(cfg.work / "cache", device)
        if abs(cache.alpha - cfg.alpha) > 1e-6:
            log.warning("the cache was made at alpha %.2f, phase b trains at %.2f", cache.alpha, cfg.alpha)

        def step_fn(i: int) -> dict[str, torch.Tensor]:
            set_lr(i)
            losses = phase_b_losses(student, vgg, cache.batch(cfg.batch, gen, cfg.crop), cfg.alpha, w)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            return {k: v.detach() for k, v in losses.items()}

        def stylize(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return student.stylize(c, s, alpha=cfg.alpha)

    def checkpoint(i: int) -> None:
        write_state(_ckpt(cfg, cfg.phase), {"student": student.state_dict(), "embed": embed.state_dict(),
                                            "optimizer": opt.state_dict(), "step": i,
                                            "widths": list(student.arch.widths), "arch": student.arch.to_json(),
                                            "config": config_dict(cfg)})

    def validate(i: int) -> dict:
        student.eval()
        try:
            return validator(stylize, student, i)
        finally:
            student.train()

    loop = Loop(f"student {cfg.phase}", steps=cfg.steps, max_minutes=cfg.max_minutes, log_every=cfg.log_every,
                checkpoint_minutes=cfg.checkpoint_minutes, log_file=cfg.work / f"phase_{cfg.phase}.jsonl")
    student.train()
    return loop.run(step_fn, step, checkpoint, validate)


# --- command line -------------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("phase", choices=["cache", "a", "b", "c", "export", "calibrate"],
                   help="cache: teacher outputs; a: encoder; b: decoder; c: both, end to end on AdaIN's objective; "
                        "export: WORK's best student of the last phase run (c, else b) to -o; "
                        "calibrate: the validation grid at each --alphas (which strength 1 should stand for)")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.8, 0.9, 1.0], help="calibrate: alphas to try")
    p.add_argument("--content-dir", type=Path, required=True)
    p.add_argument("--style-dir", type=Path, required=True)
    p.add_argument("--extra-styles", type=Path, default=None, help="more style pictures (scripts/pypi_styles)")
    p.add_argument("--work", type=Path, required=True, help="run folder: cache, checkpoints, logs, best weights")
    p.add_argument("-o", "--output", type=Path, default=None, help="export: where the student goes")
    p.add_argument("--from-student", type=Path, default=None,
                   help="a or b with no checkpoint in --work: continue from this student file (e.g. the committed one)")
    p.add_argument("--steps", type=int, default=StudentConfig.steps, help="phase a/b: total steps")
    p.add_argument("--pairs", type=int, default=StudentConfig.pairs, help="cache: teacher outputs in all")
    p.add_argument("--batch", type=int, default=StudentConfig.batch)
    p.add_argument("--crop", type=int, default=StudentConfig.crop)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--alpha", type=float, default=StudentConfig.alpha)
    p.add_argument("--widths", type=int, nargs=4, default=list(StudentArch().widths),
                   help="channels per VGG block; wider than a --from-student file's: it is grown (same function)")
    p.add_argument("--decoder-widths", type=int, nargs=4, default=None,
                   help="the decoder's own channels per block (with --widths 64 128 256 512: VGG-19 as the encoder, "
                        "phase b straight from the refitted teacher; issue 32's light decoder)")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--checkpoint-minutes", type=float, default=StudentConfig.checkpoint_minutes)
    p.add_argument("--skips", action="store_true",
                   help="decoder skips with AdaIN at relu1_1..relu3_1 (a --from-student file without them grows them)")
    p.add_argument("--skip-lr", type=float, default=StudentConfig.skip_lr,
                   help="learning-rate factor of the skip projections")
    p.add_argument("--val-size", type=int, default=StudentConfig.val_size)
    p.add_argument("--val-photos", type=int, default=StudentConfig.val_photos)
    p.add_argument("--recolor", action="store_true",
                   help="phase c: train and validate with the output recoloured to the style's RGB moments "
                        "(recorded in the weights; the engine then recolours too)")
    p.add_argument("--loss-weights", default="", metavar="K=V,...",
                   help="phase b/c: loss weights (default " + "; ".join(
                       f"{ph}: " + ",".join(f"{k}={v:g}" for k, v in w.items())
                       for ph, w in PHASE_WEIGHTS.items()) + ")")
    p.add_argument("--cached", action="store_true",
                   help="phase c with VGG-19 as the encoder: the decoder alone, on the teacher cache seen through the "
                        "frozen encoder once (a step runs only the decoder and VGG on its output)")
    p.add_argument("--log-every", type=int, default=StudentConfig.log_every)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_cli)


def _last_phase(work: Path) -> str | None:
    """The latest phase (c, else b) with a best checkpoint in ``work``: what export and calibrate read."""
    return next((ph for ph in ("c", "b") if (work / f"best_{ph}.safetensors").is_file()), None)


def run_cli(args: argparse.Namespace) -> int:
    cfg = StudentConfig(
        phase=args.phase, content_dir=args.content_dir, style_dir=args.style_dir, work=args.work,
        extra_styles=args.extra_styles, from_student=args.from_student, steps=args.steps, batch=args.batch,
        crop=args.crop, lr=args.lr,
        alpha=args.alpha, pairs=args.pairs, max_minutes=args.max_minutes, checkpoint_minutes=args.checkpoint_minutes,
        seed=args.seed, device=args.device, widths=tuple(args.widths), skips=args.skips,
        decoder_widths=tuple(args.decoder_widths) if args.decoder_widths else None, skip_lr=args.skip_lr,
        val_size=args.val_size, val_photos=args.val_photos, log_every=args.log_every, recolor=args.recolor,
        cached=args.cached)
    for item in filter(None, args.loss_weights.split(",")):
        key, _, value = item.partition("=")
        if key not in cfg.weights:
            raise StylizerError(f"--loss-weights: unknown term {key!r} (choose {', '.join(cfg.weights)})")
        cfg.weights[key] = float(value)
    if args.phase == "cache":
        log.info("teacher cache holds %d pairs", build_cache(cfg))
    elif args.phase == "export":
        phase = _last_phase(cfg.work)
        if args.output is None or phase is None:
            raise StylizerError("export needs -o FILE and a phase-c or phase-b best checkpoint in --work")
        student = load_student_file(cfg.work / f"best_{phase}.safetensors")
        meta = json.loads((cfg.work / f"best_{phase}.json").read_text())
        print(export(student, args.output, {"step": str(meta["step"]), "phase": phase,
                                            "validation": json.dumps(meta["figures"])}))
    elif args.phase == "calibrate":
        print(json.dumps(calibrate(cfg, args.alphas), indent=1))
    else:
        train_phase(cfg)
    return 0


def calibrate(cfg: StudentConfig, alphas: list[float]) -> dict[str, dict]:
    """Validation figures of WORK's best student (phase c, else b) at each feature-interpolation alpha: the data for its
    ``full_alpha`` (what strength 1 stands for), per kind of style, so one kind cannot decide for all."""
    device = resolve_device(cfg.device)
    phase = _last_phase(cfg.work)
    if phase is None:
        raise StylizerError(f"calibrate needs a phase-c or phase-b best checkpoint in {cfg.work}")
    student = load_student_file(cfg.work / f"best_{phase}.safetensors", device=device)
    validator = Validator(replace(cfg, phase="calibrate"), device)
    validator.best = -1.0  # measure only: never overwrite a best file
    out = {}
    for alpha in alphas:
        out[str(alpha)] = validator(lambda c, s, a=alpha: student.stylize(c, s, alpha=a), student, 0)
        log.info("alpha %.2f: %s", alpha, json.dumps(out[str(alpha)]))
    return out
