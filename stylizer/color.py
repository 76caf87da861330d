"""Colour preservation: keep the content photo's colours while taking the style's texture.

Two classic options from Gatys et al. 2016b ("Preserving color in neural artistic style transfer"):

* ``luminance``: stylize, then keep the output's luminance (Y) and put back the content's chroma
  (YCbCr). Works after any method, presets included.
* ``histogram``: before stylizing, recolour the *style* image so its RGB mean and covariance match
  the content's (a linear Monge-Kantorovich-style transfer via Cholesky factors). Only meaningful
  when the style is an image; for presets the same transfer is applied to the *output* instead.
"""

from __future__ import annotations

from enum import StrEnum

import torch

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


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its per-pixel RGB mean and covariance equal ``target``'s."""
    n, c = source.shape[:2]
    src = source.reshape(n, c, -1).float()
    tgt = target.reshape(target.shape[0], c, -1).float()
    mu_s, mu_t = src.mean(-1, keepdim=True), tgt.mean(-1, keepdim=True)
    src_c, tgt_c = src - mu_s, tgt - mu_t
    eye = torch.eye(c, device=source.device) * eps
    cov_s = src_c @ src_c.transpose(1, 2) / src.shape[-1] + eye
    cov_t = tgt_c @ tgt_c.transpose(1, 2) / tgt.shape[-1] + eye
    chol_s = torch.linalg.cholesky(cov_s)
    chol_t = torch.linalg.cholesky(cov_t)
    transform = chol_t @ torch.linalg.inv(chol_s)
    out = transform @ src_c + mu_t
    return out.reshape(source.shape).clamp(0, 1).to(source.dtype)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor, mode: ColorMode) -> torch.Tensor:
    """Apply ``mode`` after stylization (``histogram`` here recolours the output towards the content)."""
    if mode is ColorMode.LUMINANCE:
        return transfer_luminance(stylized, content)
    if mode is ColorMode.HISTOGRAM:
        return match_color(stylized, content)
    return stylized
