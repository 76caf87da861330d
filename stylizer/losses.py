"""Losses shared by Gatys optimisation and the feed-forward trainers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .features import gram, mean_std


def content_loss(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(feat.float(), target.float())


def gram_loss(feat: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """MSE between Gram matrices; ``target_gram`` may be (1, C, C) and broadcast over the batch."""
    g = gram(feat)
    return F.mse_loss(g, target_gram.expand_as(g))


def mean_std_loss(feat: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor) -> torch.Tensor:
    """AdaIN's style loss: match channel means and stds (Huang & Belongie 2017, eq. 12)."""
    mean, std = mean_std(feat)
    return F.mse_loss(mean, target_mean.expand_as(mean)) + F.mse_loss(std, target_std.expand_as(std))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation (mean absolute neighbour difference): discourages high-frequency noise."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy
