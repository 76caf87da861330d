"""Feature statistics shared by every method: channel mean/std, Gram matrices and AdaIN itself."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F

_local = threading.local()


class NormTape:
    """Normalisation statistics of one forward pass, recorded once and replayed (see :mod:`stylizer.tiling`).

    Instance norm and AdaIN normalise with statistics of the whole input. Run tile by tile, every tile
    would get its own statistics and its own tone; with a tape, a first pass over the whole (downscaled)
    picture records them and every tile's pass replays them in the same order.
    """

    def __init__(self) -> None:
        self.stats: list[tuple[torch.Tensor, ...]] = []
        self.replaying = False
        self._next = 0

    def replay(self) -> None:
        """Rewind: the next pass (one tile) uses the recorded statistics from the first layer on."""
        self.replaying, self._next = True, 0

    def take(self, feat: torch.Tensor, compute: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
             ) -> tuple[torch.Tensor, ...]:
        """``compute(feat)`` when recording; the next recorded statistics when replaying."""
        if not self.replaying:
            self.stats.append(compute(feat))
            return self.stats[-1]
        if self._next >= len(self.stats):
            raise RuntimeError("a tile ran more normalisations than the recorded pass")
        stats = self.stats[self._next]
        self._next += 1
        return tuple(t.to(feat.device) for t in stats)

    def __enter__(self) -> NormTape:
        if getattr(_local, "tape", None) is not None:
            raise RuntimeError("norm tapes do not nest")
        _local.tape = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.tape = None


def taped(feat: torch.Tensor, compute: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Whole-input statistics ``compute(feat)``: the input's own, or the active :class:`NormTape`'s. Every
    normalisation that measures its input goes through here, so a tiled pass gets one tone."""
    tape: NormTape | None = getattr(_local, "tape", None)
    return compute(feat) if tape is None else tape.take(feat, compute)


def norm_stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics a normalisation uses: the input's own, or the active :class:`NormTape`'s."""
    mean, std = taped(feat, lambda f: mean_std(f, eps))
    return mean, std


def instance_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  eps: float = 1e-5) -> torch.Tensor:
    """``F.instance_norm`` (the fused kernel) unless a :class:`NormTape` supplies the statistics."""
    if getattr(_local, "tape", None) is None:
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    mean, std = norm_stats(x, eps)
    y = ((x.float() - mean) / std).to(x.dtype)
    if weight is not None:
        y = y * weight.to(x.dtype).view(1, -1, 1, 1)
    if bias is not None:
        y = y + bias.to(x.dtype).view(1, -1, 1, 1)
    return y


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std of (N, C, H, W) features, shaped (N, C, 1, 1).

    Computed in float32 even under autocast: variance of bf16 activations is too coarse.
    """
    # one fused pass over (H, W) in the tensor's own layout: a reshape of a channels_last map copies it, and the
    # separate var and mean passes over a full-resolution map cost the skip student ~15 % of its run (issue 11)
    var, mean = torch.var_mean(feat.float(), dim=(2, 3), unbiased=False, keepdim=True)
    return mean, (var + eps).sqrt()


def channel_correlation(feat: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Per-sample channel correlation (N, C, C) of (N, C, H, W) features, in float32 (:func:`adain`'s ``root`` is
    its square root). ``eps`` on the covariance's diagonal gives a channel that never fires (many do at relu4_1)
    a correlation of 1 with itself and 0 with the rest instead of 0/0."""
    n, c, h, w = feat.shape
    x = feat.float().reshape(n, c, h * w)
    x = x - x.mean(2, keepdim=True)
    cov = x @ x.transpose(1, 2) / (h * w) + eps * torch.eye(c, device=feat.device)
    d = cov.diagonal(dim1=1, dim2=2).sqrt()
    return cov / (d[:, :, None] * d[:, None, :])


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of elements per channel (size-independent)."""
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w).float()
    return flat @ flat.transpose(1, 2) / (h * w)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          root: torch.Tensor | None = None, weight: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017): content statistics replaced by the style's.

    With ``root`` (C, C), the square root of the style's channel correlation (:mod:`stylizer.correlation`), it is
    *correlated* AdaIN: the normalised content ``z`` becomes ``(1 - weight) z + weight norm(root z)`` before it
    takes the style's mean and std. AdaIN alone transfers each channel's mean and std; a style's textures also live
    in how its channels move together, which WCT transfers at the cost of a whitening eigendecomposition per
    content. Mixing ``z`` by the style's own root moves the content's correlation towards the style's at one 1x1
    convolution (a (C, C) matmul), measuring nothing of the content but means and stds, so tiles (:class:`NormTape`)
    and exported graphs run it as they run AdaIN. Each part is normalised before they are blended, so ``weight`` means
    the same whatever the root's scale. Weight 0 (or no root) is plain AdaIN.
    """
    if torch.onnx.is_in_onnx_export():
        return _adain_as_instance_norms(content, style_mean, style_std, root, weight)
    c_mean, c_std = norm_stats(content)
    if root is None:
        scale = style_std / c_std  # (x - mu_c) / sigma_c * sigma_s + mu_s as one multiply-add per element
        return torch.addcmul(style_mean - c_mean * scale, content.float(), scale).to(content.dtype)
    # In the content's own dtype (bf16 under autocast) and in few passes over the map: at 512 px each pass over
    # relu4_1 costs ~1 ms, and the first way this was written (float32, a step per operation) took 19 ms against
    # plain AdaIN's 9. The mixing is a 1x1 convolution: it keeps oneDNN's (and OpenVINO's) blocked layout, where a
    # matmul over (C, H*W) reorders the map twice (OpenVINO bf16: +11 ms a 512 px picture as a matmul, +2 as a conv).
    dtype = content.dtype
    z = torch.addcmul((-c_mean / c_std).to(dtype), content, (1.0 / c_std).to(dtype))
    y = F.conv2d(z, root.to(z.device, dtype)[:, :, None, None])
    y_mean, y_std = norm_stats(y)
    to_y = weight * style_std / y_std  # (1 - w) z + w (y - mu_y) / sigma_y, then the style's std and mean
    shift = style_mean - to_y * y_mean
    mixed = torch.addcmul(shift.to(dtype), z, ((1.0 - weight) * style_std).to(dtype))
    return torch.addcmul(mixed, y, to_y.to(dtype))


def _adain_as_instance_norms(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                             root: torch.Tensor | None, weight: float | torch.Tensor) -> torch.Tensor:
    """:func:`adain` as exported graphs hold it: the same numbers (float32: within 1e-4 of a grey level), written
    with ``F.instance_norm`` so OpenVINO runs each normalisation as one fused MVN kernel instead of the half dozen
    reductions and elementwise passes :func:`mean_std` traces to (4 ms of a 512 px picture, 1.5 %, on one EPYC-like
    core). Eager torch keeps :func:`adain`'s own form: one rounding per output in bf16 and NormTape's statistics."""
    z = F.instance_norm(content, eps=1e-5)
    if root is None:
        return z * style_std + style_mean
    y = F.instance_norm(F.conv2d(z, root[:, :, None, None]), eps=1e-5)
    return z * ((1.0 - weight) * style_std) + y * (weight * style_std) + style_mean


def stylize_features(f_c: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, alpha: float,
                     root: torch.Tensor | None = None, weight: float | torch.Tensor = 0.0) -> torch.Tensor:
    """A decoder's input: the AdaIN target (correlated by ``root`` at ``weight`` when given, see :func:`adain`)
    interpolated with the content features by ``alpha`` (strength in feature space, as in the paper). Shared by the
    VGG decoder, the student and their trainers."""
    t = adain(f_c, mean.to(f_c.device), std.to(f_c.device), root, weight)  # adain moves the root itself
    if alpha >= 1.0:
        return t
    return alpha * t + (1.0 - alpha) * f_c
