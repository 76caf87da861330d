"""Gatys et al. (2016) optimisation-based style transfer: the slow, high-quality mode.

The output image itself is optimised (L-BFGS by default, Adam on request) so that its VGG-19
``conv4_2`` features match the content photo and its Gram matrices at ``relu1_1..relu5_1`` match
the style picture(s), with a small total-variation term against high-frequency noise.

What makes it fast enough to offer in a chat bot on a CPU:

* **Coarse to fine.** Most iterations run at a fraction of the output size, where one VGG pass
  costs a quarter or less; the result is upsampled (with the content's own high frequencies put
  back) and refined for the remaining iterations at full size. ``steps`` counts L-BFGS iterations
  (one VGG forward+backward each) summed over all scales, so the budget means the same thing
  whatever the schedule.
* **Mixed precision.** The VGG forward runs under bf16 autocast where the hardware does bf16
  natively (CUDA, AVX512-BF16/AMX CPUs); the optimised image, the Gram matrices and the losses
  stay float32 so L-BFGS sees a smooth objective.
* **One mixed style target.** For style weights ``w_i`` summing to 1,
  ``sum_i w_i |G - T_i|^2 = |G - sum_i w_i T_i|^2 + const``, so mixing several styles costs
  nothing per iteration: the Gram targets are averaged once.
* The forward stops at ``relu5_1`` and no gradient flows into the frozen network's weights.

Progress is reported once per VGG evaluation through ``job.report`` (which also raises
:class:`~stylizer.errors.Cancelled` when the caller cancels), with a preview picture every
``preview_every`` evaluations when the caller asked for previews.

Options (``job.options``): ``optimizer`` (``lbfgs`` | ``adam``), ``content_weight``,
``style_weight``, ``tv_weight``, ``scales`` (number of resolutions), ``coarse_fraction`` (share
of the steps spent below full size), ``init`` (``content`` | ``noise``), ``pooling``
(``max`` | ``avg``), ``lr`` (Adam), ``preview_every``, ``fast_gram`` (Gram products in bf16 under
autocast, accumulated and compared in float32). The defaults (three scales, 80 % of the steps below
full size, content weight 0.3) were tuned against the peer ``pastiche`` at 384 px / 200 steps
(bench/gatys.py): pastiche's balance (content 0.01) leaves our multi-scale result ~13 % further from
the content than pastiche's, 0.3 brings it below pastiche's while the style gap stays ~35 % smaller.
Defaults come from ``STYLIZER_GATYS_*``
environment variables where listed in :data:`ENV_DEFAULTS`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .device import autocast
from .errors import MethodError
from .features import gram
from .image import resize_tensor, tensor_to_pil
from .manifest import Manifest
from .methods import MethodJob
from .vgg import STYLE_LAYERS, VGG19, get_vgg

log = logging.getLogger(__name__)

CONTENT_LAYER = "conv4_2"
#: Steps when the caller gives none (``STYLIZER_GATYS_STEPS`` overrides).
DEFAULT_STEPS = 300
#: Below this long side a coarse scale teaches nothing (relu5_1 would be 1-2 px wide).
MIN_SCALE_SIDE = 96

ENV_DEFAULTS = {
    "steps": "STYLIZER_GATYS_STEPS",
    "optimizer": "STYLIZER_GATYS_OPTIMIZER",
    "content_weight": "STYLIZER_GATYS_CONTENT_WEIGHT",
    "style_weight": "STYLIZER_GATYS_STYLE_WEIGHT",
    "tv_weight": "STYLIZER_GATYS_TV_WEIGHT",
}


@dataclass(frozen=True)
class GatysSettings:
    """The knobs of one run, resolved from job options, environment and defaults.

    Loss weights are for images in [0, 1] and features of the Caffe-preprocessed VGG (0-255 input
    scale), with Gram matrices normalised by the number of positions. Style layer ``l`` with ``C_l``
    channels is weighted ``style_weight / C_l^2`` so every layer contributes comparably (as in
    pastiche and the original paper's ``1/(4 N_l^2 M_l^2)``).
    """

    steps: int = DEFAULT_STEPS
    optimizer: str = "lbfgs"
    content_weight: float = 0.3
    style_weight: float = 10.0
    tv_weight: float = 0.0
    scales: int = 3
    coarse_fraction: float = 0.8
    init: str = "content"
    pooling: str = "max"
    lr: float = 0.02
    preview_every: int = 0  # 0: about ten previews per run
    line_search: str = "strong_wolfe"
    history: int = 50
    fast_gram: bool = True

    @classmethod
    def from_job(cls, job: MethodJob) -> GatysSettings:
        opts = dict(job.options)
        for key, env in ENV_DEFAULTS.items():
            if key not in opts and os.environ.get(env):
                opts[key] = os.environ[env]
        if job.steps is not None:
            opts["steps"] = job.steps
        try:
            settings = cls(
                steps=int(opts.get("steps", cls.steps)),
                optimizer=str(opts.get("optimizer", cls.optimizer)).lower(),
                content_weight=float(opts.get("content_weight", cls.content_weight)),
                style_weight=float(opts.get("style_weight", cls.style_weight)),
                tv_weight=float(opts.get("tv_weight", cls.tv_weight)),
                scales=int(opts.get("scales", cls.scales)),
                coarse_fraction=float(opts.get("coarse_fraction", cls.coarse_fraction)),
                init=str(opts.get("init", cls.init)).lower(),
                pooling=str(opts.get("pooling", cls.pooling)).lower(),
                lr=float(opts.get("lr", cls.lr)),
                preview_every=int(opts.get("preview_every", cls.preview_every)),
                line_search=str(opts.get("line_search", cls.line_search)).lower(),
                history=int(opts.get("history", cls.history)),
                fast_gram=_flag(opts.get("fast_gram", cls.fast_gram)),
            )
        except (TypeError, ValueError) as exc:
            raise MethodError(f"gatys: bad option value ({exc})") from exc
        if settings.steps < 1:
            raise MethodError(f"gatys: steps must be at least 1, got {settings.steps}")
        if settings.optimizer not in ("lbfgs", "adam"):
            raise MethodError(f"gatys: optimizer must be lbfgs or adam, got {settings.optimizer!r}")
        if settings.init not in ("content", "noise"):
            raise MethodError(f"gatys: init must be content or noise, got {settings.init!r}")
        if settings.pooling not in ("max", "avg"):
            raise MethodError(f"gatys: pooling must be max or avg, got {settings.pooling!r}")
        if not 0.0 <= settings.coarse_fraction < 1.0 or settings.scales < 1:
            raise MethodError("gatys: scales must be >= 1 and coarse_fraction in [0, 1)")
        return settings


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "0.0", "false", "no", "off", "")
    return bool(value)


def scale_schedule(height: int, width: int, steps: int, scales: int, coarse_fraction: float
                   ) -> list[tuple[tuple[int, int], int]]:
    """``[((h, w), iterations), ...]`` from coarse to fine, halving the size per level.

    Coarse levels share ``coarse_fraction`` of the steps (more to the coarser, cheaper ones); the
    full size gets the rest, at least one. Levels whose long side would fall below
    :data:`MIN_SCALE_SIDE` are dropped.
    """
    sizes = [(height, width)]
    for _ in range(scales - 1):
        h, w = sizes[0]
        if max(h, w) // 2 < MIN_SCALE_SIDE:
            break
        sizes.insert(0, (max(1, round(h / 2)), max(1, round(w / 2))))
    if len(sizes) == 1 or steps < len(sizes):
        return [((height, width), steps)]
    fine = max(1, round(steps * (1.0 - coarse_fraction)))
    coarse_total = steps - fine
    # Coarser levels are cheaper: split the coarse budget 2:1 between consecutive levels.
    shares = [2.0 ** (len(sizes) - 2 - i) for i in range(len(sizes) - 1)]
    counts = [int(coarse_total * s / sum(shares)) for s in shares]
    counts[0] += coarse_total - sum(counts)
    plan = [(size, n) for size, n in zip(sizes[:-1], counts, strict=True) if n > 0]
    return [*plan, ((height, width), fine)]


class _Objective:
    """Content + style + TV loss at one resolution, with its targets precomputed."""

    def __init__(self, vgg: VGG19, content: torch.Tensor, style_grams: dict[str, torch.Tensor],
                 settings: GatysSettings, style_scale: float, device: torch.device, mixed: bool) -> None:
        self.vgg, self.settings, self.device, self.mixed = vgg, settings, device, mixed
        self.taps = (CONTENT_LAYER, *STYLE_LAYERS)
        with torch.no_grad(), autocast(device, mixed):
            self.content_target = vgg(content, (CONTENT_LAYER,))[CONTENT_LAYER].float()
        self.style_grams = style_grams
        self.layer_weights = {
            layer: style_scale * settings.style_weight / g.shape[-1] ** 2 for layer, g in style_grams.items()
        }

    def _gram(self, feat: torch.Tensor) -> torch.Tensor:
        if self.settings.fast_gram and feat.dtype != torch.float32:
            n, c, h, w = feat.shape
            flat = feat.reshape(n, c, h * w)
            with autocast(self.device, self.mixed):
                return (flat @ flat.transpose(1, 2)).float() / (h * w)
        return gram(feat.float())

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.mixed):
            feats = self.vgg(image, self.taps)
        # Losses in float32 outside autocast: bf16 Gram matrices are too coarse for L-BFGS.
        loss = self.settings.content_weight * F.mse_loss(feats[CONTENT_LAYER].float(), self.content_target)
        for layer, target in self.style_grams.items():
            loss = loss + self.layer_weights[layer] * F.mse_loss(self._gram(feats[layer]), target)
        if self.settings.tv_weight:
            dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
            dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
            loss = loss + self.settings.tv_weight * (dx + dy)
        return loss


def mixed_style_grams(vgg: VGG19, job: MethodJob, factor: float, mixed: bool) -> dict[str, torch.Tensor]:
    """Weighted mean of the styles' Gram matrices, each style resized by ``factor`` first.

    Resizing the style with the content keeps the texture's scale relative to the picture the same
    at every level of the pyramid.
    """
    total: dict[str, torch.Tensor] = {}
    for style in job.styles:
        if style.image is None:
            raise MethodError("gatys takes style images, not presets")
        image = style.image
        h, w = image.shape[-2:]
        if factor != 1.0:
            image = resize_tensor(image, (max(16, round(h * factor)), max(16, round(w * factor))))
        with torch.no_grad(), autocast(job.device, mixed):
            feats = vgg(image, STYLE_LAYERS)
        for layer in STYLE_LAYERS:
            g = gram(feats[layer].float()) * style.weight
            total[layer] = total[layer] + g if layer in total else g
    return total


def upsample_with_detail(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Upsample the coarse result to ``content``'s size and add back the content's fine detail.

    A bilinear upsample alone is blurry, and the fine level would spend its few iterations
    re-inventing the edges; the content's high-pass band (itself minus its down-up-sampled copy)
    restores them at no cost.
    """
    size = tuple(content.shape[-2:])
    up = F.interpolate(result, size=size, mode="bicubic", align_corners=False)
    low = F.interpolate(resize_tensor(content, tuple(result.shape[-2:])), size=size, mode="bicubic",
                        align_corners=False)
    return (up + (content - low)).clamp(0, 1)


class GatysMethod:
    """The ``gatys`` method: slow, any style picture(s), no trained weights needed."""

    name = "gatys"
    description = "Gatys optimisation (slow, highest quality, any style picture)"
    accepts_images = True
    slow = True

    def available(self, manifest: Manifest) -> bool:
        return True

    def run(self, job: MethodJob) -> torch.Tensor:
        settings = GatysSettings.from_job(job)
        if job.strength <= 0.0:
            return job.content.clone()
        with torch.inference_mode(False), torch.enable_grad():
            return self._optimise(job, settings)

    def _optimise(self, job: MethodJob, settings: GatysSettings) -> torch.Tensor:
        device = job.device
        vgg = get_vgg(device, settings.pooling)
        content_full = job.content.detach().clone().float()
        height, width = content_full.shape[-2:]
        plan = scale_schedule(height, width, settings.steps, settings.scales, settings.coarse_fraction)
        generator = torch.Generator(device="cpu")
        generator.manual_seed(job.seed if job.seed is not None else 0)
        total = sum(n for _, n in plan)
        preview_every = settings.preview_every or max(1, total // 10)
        done = 0
        image: torch.Tensor | None = None
        log.debug("gatys plan %s on %s (%s)", plan, device, settings)

        for (h, w), iterations in plan:
            job.check_cancelled()
            content = resize_tensor(content_full, (h, w))
            grams = mixed_style_grams(vgg, job, h / height, job.mixed_precision)
            objective = _Objective(vgg, content, grams, settings, job.strength, device, job.mixed_precision)
            if image is None:
                if settings.init == "noise":
                    noise = torch.rand(content.shape, generator=generator).to(device)
                    image = (0.5 * content + 0.5 * noise).clamp(0, 1)
                else:
                    image = content.clone()
            else:
                image = upsample_with_detail(image, content)
            image = image.detach().contiguous().requires_grad_(True)
            offset = done

            def on_eval(step: int, loss: float, current: torch.Tensor, offset: int = offset) -> None:
                global_step = min(total, offset + step)
                preview = None
                if job.wants_preview and (global_step % preview_every == 0 or global_step == total):
                    preview = tensor_to_pil(current.detach().clamp(0, 1))
                job.report("gatys", global_step, total, loss, preview)

            _minimise(objective, image, iterations, settings, on_eval)
            done += iterations
            image = image.detach().clamp_(0, 1)
        assert image is not None
        return image


def _minimise(objective: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, iterations: int,
              settings: GatysSettings, on_eval: Callable[[int, float, torch.Tensor], None]) -> None:
    """Run ``iterations`` VGG evaluations of ``objective`` on ``image`` in place."""
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        optimizer.zero_grad(set_to_none=True)
        loss = objective(image)
        loss.backward()
        evals += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise MethodError("gatys: the loss diverged (non-finite); try smaller weights or fp32")
        on_eval(evals, value, image)
        return loss

    if settings.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam([image], lr=settings.lr)
        for _ in range(iterations):
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0, 1)
        return
    # The budget is VGG evaluations (what costs time): max_eval caps the line search too, and a
    # strong-Wolfe search rarely needs more than one evaluation per iteration once L-BFGS has
    # curvature pairs, while it keeps the first steps (and tiny images) from diverging.
    optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=iterations, max_eval=iterations,
                                  history_size=settings.history, tolerance_grad=0.0, tolerance_change=0.0,
                                  line_search_fn=None if settings.line_search == "none" else "strong_wolfe")
    while evals < iterations:
        before = evals
        optimizer.step(closure)
        if evals == before:  # pragma: no cover - LBFGS made no progress at all
            break
        optimizer.param_groups[0]["max_iter"] = optimizer.param_groups[0]["max_eval"] = iterations - evals
