"""Train the fast AdaIN net: ``python -m stylizer train-decoder --net fast --content-dir D --style-dir D -o FILE``.

Same objective as the paper's decoder (:mod:`stylizer.train.decoder`): the output's relu4_1 should
equal the AdaIN target ``t = AdaIN(f_c, f_s)`` and its channel mean/std at every code layer should
equal the style's. What is trained is the light net of :mod:`stylizer.fast_adain`: the style
predictor (style code -> norm parameters) and the transformer's convolutions.

* ``--init-from`` a CIN base file starts the transformer from its convolutions and the predictor
  from its average style: the convolutions already know how to paint, so even a short CPU run only
  has to learn which statistics call for which ``(gamma, beta)``.
* A fraction of the style samples (``--photo-styles``) are augmented *photos*: the predictor then
  sees far more kinds of statistics than 37 paintings give, which is what arbitrary style needs.
* ``--teacher-weight W`` adds distillation: the paper's engine (VGG-19 + the trained decoder) stylizes
  the same batch and the net's VGG features at relu2_1..relu4_1 are pulled towards the teacher's. That
  is a dense per-pixel signal ("this is what the picture should look like") where the style loss only
  says which statistics to hit, so a short (CPU) run learns much more per step.
* ``--holdout-styles N`` keeps every N-th painting out of training so unseen-style quality can be
  measured honestly (bench/adain.py).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..adain import ENCODER_LAYER, Decoder, load_decoder, load_decoder_file
from ..device import autocast, resolve_device
from ..errors import StylizerError
from ..fast_adain import CODE_LAYERS, FastAdaIN, code_from_features, save_fast
from ..features import adain, mean_std
from ..image import list_images
from ..losses import content_loss, mean_std_loss, tv_loss
from ..manifest import Manifest, load_tensors
from ..transformer import CIN_ARCH, Arch
from ..vgg import LAYER_SCALE, get_vgg
from .data import ImageFolderDataset, StyleAugment, infinite_batches
from .loop import DecoderConfig, StepLog, report_window, save_checkpoint, start_or_resume

log = logging.getLogger(__name__)


@dataclass
class FastConfig(DecoderConfig):
    """Decoder settings plus what only the fast net has."""

    init_from: Path | None = None  # a CIN base .safetensors to start from
    photo_styles: float = 0.25  # fraction of style samples that are augmented photos
    holdout_styles: int = 0  # every N-th painting (sorted) is kept out of training; 0 keeps all
    tv_weight: float = 1.0
    head_lr_scale: float = 5.0  # the predictor learns faster than the (pre-trained) convolutions
    teacher_weight: float = 0.0  # weight of the distillation loss to the paper's engine (0: off)
    teacher: Path | None = None  # decoder file of the teacher (None: the manifest's adain_decoder)


#: Layers at which the net's features are pulled towards the teacher's (distillation).
TEACHER_LAYERS = ("relu2_1", "relu3_1", "relu4_1")


def holdout_split(style_dir: Path, every: int) -> tuple[list[Path], list[Path]]:
    """(training paintings, held-out paintings): every ``every``-th sorted file is held out."""
    paths = list_images(Path(style_dir))
    held = paths[every // 2::every] if every > 0 else []
    return [p for p in paths if p not in held], held


def fast_losses(vgg, model: FastAdaIN, content: torch.Tensor, style: torch.Tensor,
                teacher: Decoder | None = None) -> dict[str, torch.Tensor]:
    """Losses of one batch (``content``, ``style``, ``tv`` and, with a teacher decoder, ``teacher``);
    features divided by LAYER_SCALE as for the decoder."""
    with torch.no_grad():
        f_c = vgg(content, [ENCODER_LAYER])[ENCODER_LAYER]
        f_s = vgg(style, CODE_LAYERS)
        code = code_from_features(f_s)
        targets = {k: mean_std(v / LAYER_SCALE[k]) for k, v in f_s.items()}
        t = adain(f_c, *mean_std(f_s[ENCODER_LAYER]))
        f_t = vgg(teacher(t).clamp(0, 1), TEACHER_LAYERS) if teacher is not None else None
    out = model(content, code)
    f_o = vgg(out, CODE_LAYERS)
    scale = LAYER_SCALE[ENCODER_LAYER]
    losses = {
        "content": content_loss(f_o[ENCODER_LAYER] / scale, t / scale),
        "style": sum(mean_std_loss(f_o[k] / LAYER_SCALE[k], *targets[k]) for k in CODE_LAYERS),
        "tv": tv_loss(out.float()),
    }
    if f_t is not None:
        losses["teacher"] = sum(content_loss(f_o[k] / LAYER_SCALE[k], f_t[k] / LAYER_SCALE[k]) for k in TEACHER_LAYERS)
    return losses  # type: ignore[return-value]


def init_from_cin(model: FastAdaIN, path: Path) -> None:
    """Copy a CIN base's convolutions into the net and its average style into the predictor's base."""
    tensors = load_tensors(Path(path), what=f"CIN base {path}")
    own = model.net.state_dict()
    missing = [k for k in own if k not in tensors or tensors[k].shape != own[k].shape]
    if missing:
        raise StylizerError(f"{path} does not match the fast net's architecture ({missing[:2]})")
    model.net.load_state_dict({k: tensors[k] for k in own})
    init = {k.removeprefix("init."): v for k, v in tensors.items() if k.startswith("init.")}
    if init:
        model.predictor.set_base(init)


def train_fast(cfg: FastConfig) -> list[StepLog]:
    """Train the fast net; writes ``cfg.output`` (fp16) and returns the loss log."""
    device = resolve_device(cfg.device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)
    memory_format = torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format
    vgg = get_vgg(device).to(memory_format=memory_format)
    arch = CIN_ARCH
    if cfg.init_from is not None:
        from ..cin import read_metadata

        arch = Arch.from_json(read_metadata(Path(cfg.init_from), "CIN base").get("arch"), CIN_ARCH)
    model = FastAdaIN(arch).to(device)
    if cfg.init_from is not None:
        init_from_cin(model, Path(cfg.init_from))
    model = model.to(memory_format=memory_format).train()
    teacher = None
    if cfg.teacher_weight > 0:
        teacher = (load_decoder_file(cfg.teacher, device, what="teacher decoder") if cfg.teacher
                   else load_decoder(Manifest.default(), device)).to(memory_format=memory_format)
    optimizer = torch.optim.Adam([
        {"params": model.net.parameters(), "lr_scale": 1.0},
        {"params": model.predictor.parameters(), "lr_scale": cfg.head_lr_scale},
    ], lr=cfg.lr)
    checkpoint, step = start_or_resume(cfg, model, optimizer, device, key="model")

    contents = ImageFolderDataset(cfg.content_dir, crop=cfg.crop, size=cfg.size)
    paintings = ImageFolderDataset(cfg.style_dir, crop=cfg.crop, augment=StyleAugment(cfg.crop))
    paintings.paths, held = holdout_split(cfg.style_dir, cfg.holdout_styles)
    n_photo = min(cfg.batch - 1, round(cfg.batch * cfg.photo_styles))
    seed = cfg.seed if cfg.seed is not None else int(time.time())
    content_batches = infinite_batches(contents, cfg.batch, cfg.workers, device, seed=seed)
    painting_batches = infinite_batches(paintings, cfg.batch - n_photo, cfg.workers, device, seed=seed + 1)
    photo_batches = None
    if n_photo:
        photos = ImageFolderDataset(cfg.content_dir, crop=cfg.crop, augment=StyleAugment(cfg.crop, jitter=0.5))
        photo_batches = infinite_batches(photos, n_photo, cfg.workers, device, seed=seed + 2)
    log.info("training the fast AdaIN net on %s: %d photos, %d paintings (%d held out: %s), %d photo styles per "
             "batch of %d, crop %d", device, len(contents), len(paintings.paths), len(held),
             ", ".join(p.name for p in held), n_photo, cfg.batch, cfg.crop)

    history: list[StepLog] = []
    window: list[torch.Tensor] = []
    teacher_window: list[torch.Tensor] = []
    log_fh = open(cfg.log_file, "a", encoding="utf-8") if cfg.log_file else None  # noqa: SIM115
    start = time.perf_counter()
    deadline = start + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    try:
        while step < cfg.steps:
            lr = cfg.lr / (1.0 + cfg.lr_decay * step)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            content = next(content_batches).contiguous(memory_format=memory_format)
            style = next(painting_batches)
            if photo_batches is not None:
                style = torch.cat([style, next(photo_batches)])
            style = style.contiguous(memory_format=memory_format)
            with autocast(device, cfg.mixed_precision):
                losses = fast_losses(vgg, model, content, style, teacher)
            loss_c, loss_s = losses["content"], losses["style"]
            loss = cfg.content_weight * loss_c + cfg.style_weight * loss_s + cfg.tv_weight * losses["tv"]
            if teacher is not None:
                loss = loss + cfg.teacher_weight * losses["teacher"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            window.append(torch.stack([loss_c.detach(), loss_s.detach()]).float())
            if teacher is not None:
                teacher_window.append(losses["teacher"].detach().float())
            out_of_time = time.perf_counter() > deadline
            if step % cfg.log_every == 0 or step == cfg.steps or out_of_time:
                report_window(cfg, window, step, lr, time.perf_counter() - start, history, log_fh)
                if teacher_window:
                    log.info("step %d  distillation %.4f", step, float(torch.stack(teacher_window).mean()))
                    teacher_window.clear()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save_checkpoint(checkpoint, model, optimizer, step, key="model")
                save_fast(model, cfg.output, _metadata(cfg, step, start, device, history, held))
            if out_of_time:
                log.info("time limit of %.1f min reached at step %d", cfg.max_minutes, step)
                break
    finally:
        if log_fh:
            log_fh.close()
    if cfg.checkpoint_every:
        save_checkpoint(checkpoint, model, optimizer, step, key="model")
    sha = save_fast(model, cfg.output, _metadata(cfg, step, start, device, history, held))
    log.info("saved fast AdaIN net to %s (sha256 %s) after %d steps", cfg.output, sha, step)
    return history


def _metadata(cfg: FastConfig, step: int, start: float, device: torch.device, history: list[StepLog],
              held: list[Path]) -> dict[str, str]:
    meta = {
        "steps": str(step), "crop": str(cfg.crop), "batch": str(cfg.batch), "style_weight": str(cfg.style_weight),
        "lr": str(cfg.lr), "device": str(device), "minutes": f"{(time.perf_counter() - start) / 60:.1f}",
        "photo_styles": str(cfg.photo_styles), "held_out_styles": ",".join(p.name for p in held),
        "init_from": Path(cfg.init_from).name if cfg.init_from else "", "teacher_weight": str(cfg.teacher_weight),
    }
    if history:
        meta.update(final_content_loss=f"{history[-1].content:.4f}", final_style_loss=f"{history[-1].style:.4f}")
    return meta
