"""Feature statistics shared by every method: channel mean/std, Gram matrices and AdaIN itself."""

from __future__ import annotations

import torch


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std of (N, C, H, W) features, shaped (N, C, 1, 1).

    Computed in float32 even under autocast: variance of bf16 activations is too coarse.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1).float()
    var = flat.var(dim=2, unbiased=False) + eps
    return flat.mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of elements per channel (size-independent)."""
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w).float()
    return flat @ flat.transpose(1, 2) / (h * w)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017): content statistics replaced by the style's."""
    c_mean, c_std = mean_std(content)
    normalised = (content.float() - c_mean) / c_std
    return (normalised * style_std + style_mean).to(content.dtype)
