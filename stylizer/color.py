"""Colour preservation: keep the content photo's colours while taking the style's texture.

Two classic options from Gatys et al. 2016b ("Preserving color in neural artistic style transfer"):

* ``luminance``: stylize, then keep the output's luminance (Y) and put back the content's chroma
  (YCbCr). Works after any method, presets included.
* ``histogram``: before stylizing, recolour the *style* image so its RGB mean and covariance match
  the content's (a linear Monge-Kantorovich-style transfer via Cholesky factors). Only meaningful
  when the style is an image; for presets the same transfer is applied to the *output* instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import torch

from .features import taped
from .image import resize_tensor


class ColorMode(StrEnum):
    NONE = "none"
    LUMINANCE = "luminance"
    HISTOGRAM = "histogram"

    @classmethod
    def parse(cls, value: bool | str | ColorMode | None) -> ColorMode:
        """``True`` means luminance (the most robust choice), ``False``/``None`` means none."""
        if value is True:
            return cls.LUMINANCE
        if value is False or value is None:
            return cls.NONE
        return cls(str(value).lower())


_RGB_TO_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> YCbCr with chroma centred on 0."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCBCR.to(image), image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YCBCR).to(image), image)


def transfer_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Output luminance + content chroma. Content is resized to the output if needed."""
    content = resize_tensor(content, tuple(stylized.shape[-2:]))
    out_ycc = rgb_to_ycbcr(stylized)
    content_ycc = rgb_to_ycbcr(content)
    merged = torch.cat([out_ycc[:, :1], content_ycc[:, 1:]], dim=1)
    return ycbcr_to_rgb(merged).clamp(0, 1)


def color_moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image RGB mean (N, 3, 1) and covariance (N, 3, 3) in float32: what :func:`match_color` matches.

    Never under autocast: a bf16 product leaves a grey picture's covariance (rank 1) indefinite.
    """
    n, c = image.shape[:2]
    with torch.autocast(image.device.type, enabled=False):
        flat = image.reshape(n, c, -1).float()
        mean = flat.mean(-1, keepdim=True)
        centred = flat - mean
        return mean, centred @ centred.transpose(1, 2) / flat.shape[-1]


def mix_color_moments(moments: Sequence[tuple[float, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of a mixture: ``(weight, mean, cov)`` per ingredient -> the pooled mean and covariance (what the
    pixels of all ingredients, taken in those shares, would have)."""
    total = sum(w for w, _, _ in moments)
    mean = sum(w / total * m for w, m, _ in moments)
    second = sum(w / total * (cov + m @ m.transpose(-1, -2)) for w, m, cov in moments)
    return mean, second - mean @ mean.transpose(-1, -2)  # type: ignore[operator, return-value]


def _cholesky3(cov: torch.Tensor, eps: float) -> torch.Tensor:
    """Lower Cholesky factor of ``cov + eps I`` for (..., 3, 3) covariances, written out element by element.

    Why not ``torch.linalg.cholesky``: these few multiply-adds export to ONNX (the CLI's torch-free student runs
    the recolouring inside its graph, :mod:`stylizer.onnx_engine`), and each pivot is floored at ``eps``, so a
    grey picture's rank-1 covariance, which rounding can leave indefinite, still gets a usable factor.
    """
    a = cov + eps * torch.eye(3, device=cov.device, dtype=cov.dtype)
    l00 = a[..., 0, 0].clamp_min(eps).sqrt()
    l10, l20 = a[..., 1, 0] / l00, a[..., 2, 0] / l00
    l11 = (a[..., 1, 1] - l10 * l10).clamp_min(eps).sqrt()
    l21 = (a[..., 2, 1] - l20 * l10) / l11
    l22 = (a[..., 2, 2] - l20 * l20 - l21 * l21).clamp_min(eps).sqrt()
    zero = torch.zeros_like(l00)
    return torch.stack([l00, zero, zero, l10, l11, zero, l20, l21, l22], -1).unflatten(-1, (3, 3))


def _inverse_lower3(factor: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 3, 3) lower-triangular ``factor`` by forward substitution (exports to ONNX, as above)."""
    l00, l10, l11 = factor[..., 0, 0], factor[..., 1, 0], factor[..., 1, 1]
    l20, l21, l22 = factor[..., 2, 0], factor[..., 2, 1], factor[..., 2, 2]
    i00, i11, i22 = 1 / l00, 1 / l11, 1 / l22
    i10 = -l10 * i00 * i11
    i21 = -l21 * i11 * i22
    i20 = -(l20 * i00 + l21 * i10) * i22
    zero = torch.zeros_like(l00)
    return torch.stack([i00, zero, zero, i10, i11, zero, i20, i21, i22], -1).unflatten(-1, (3, 3))


def match_color_moments(source: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor,
                        eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` (N, 3, H, W) so its RGB mean and covariance become ``mean``/``cov`` (N or 1, ...).

    A linear map through Cholesky factors (a Monge-Kantorovich-style transfer). The source's own moments go
    through :func:`stylizer.features.taped`, so a tiled pass recolours every tile with the whole picture's.
    Differentiable: the student is trained through it.
    """
    n, c = source.shape[:2]
    mu_s, cov_s = taped(source, color_moments)
    with torch.autocast(source.device.type, enabled=False):
        src = source.reshape(n, c, -1).float()
        transform = _cholesky3(cov.to(source.device).float(), eps) @ _inverse_lower3(_cholesky3(cov_s, eps))
        out = transform @ (src - mu_s) + mean.to(source.device).float()
    return out.reshape(source.shape).clamp(0, 1).to(source.dtype)


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its per-pixel RGB mean and covariance equal ``target``'s."""
    return match_color_moments(source, *color_moments(target), eps=eps)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor, mode: ColorMode) -> torch.Tensor:
    """Apply ``mode`` after stylization (``histogram`` here recolours the output towards the content)."""
    if mode is ColorMode.LUMINANCE:
        return transfer_luminance(stylized, content)
    if mode is ColorMode.HISTOGRAM:
        return match_color(stylized, content)
    return stylized
