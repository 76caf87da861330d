"""Losses shared by Gatys optimisation and the feed-forward trainers.

The single-term losses come first (content, Gram, AdaIN's mean/std, total variation); then
:class:`PerceptualLoss`, the composite loss of the feed-forward preset nets.

One frozen VGG-19 pass over the output gives the content feature (relu3_1 by default) and the style
features (relu1_1..relu5_1). Every term is *relative*: the content term is divided by the content
features' energy and each style layer's Gram error by its target Gram's energy, so the weights mean
the same thing for every painting and every layer (raw Gram magnitudes differ by orders of
magnitude between relu1_1 and relu5_1, and between a pale watercolour and a dark oil painting).
A channel mean/std term (AdaIN's style loss) complements the Grams: it is what the brief's
``style_gap`` measures and it converges faster than second moments.

Several styles live in one :class:`PerceptualLoss` so a CIN batch can mix them: ``style_index``
says which painting each sample is meant to look like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .adain import ENCODER_LAYER, LOSS_LAYERS, correlation_root
from .features import adain, channel_correlation, gram, mean_std
from .vgg import LAYER_SCALE, STYLE_LAYERS, VGG19


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

@dataclass(frozen=True)
class LossWeights:
    """Weights of the relative loss terms; the defaults were tuned on held-out photos (see README/report)."""

    content: float = 1.0
    style: float = 4.0
    moments: float = 2.0
    tv: float = 0.3
    content_layer: str = "relu3_1"
    style_layers: tuple[str, ...] = STYLE_LAYERS


def adain_targets(vgg, content: torch.Tensor, style: torch.Tensor, layers: tuple[str, ...] = LOSS_LAYERS,
                  correlation: float = 0.0) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """AdaIN's training targets from the frozen VGG: ``t`` at relu4_1 (raw scale) and the style's channel
    (mean, std) per layer, divided by :data:`LAYER_SCALE`. ``correlation`` > 0: ``t`` is correlated AdaIN at that
    weight, each sample by its own style's root (what the decoder is given at run time)."""
    with torch.no_grad():
        f_c = vgg(content, [ENCODER_LAYER])[ENCODER_LAYER]
        f_s = vgg(style, layers)
        targets = {k: mean_std(v / LAYER_SCALE[k]) for k, v in f_s.items()}
        mean, std = mean_std(f_s[ENCODER_LAYER])
        if correlation <= 0:
            return adain(f_c, mean, std), targets
        correlations = channel_correlation(f_s[ENCODER_LAYER])
        return torch.cat([adain(f_c[i:i + 1], mean[i:i + 1], std[i:i + 1], correlation_root(r), correlation)
                          for i, r in enumerate(correlations)]), targets


def adain_losses(vgg, out: torch.Tensor, t: torch.Tensor, targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss, style loss) of an output against :func:`adain_targets`: whichever net drew ``out``
    (our decoder, the student) is trained on the same two terms."""
    return adain_feature_losses(vgg(out, tuple(targets)), t, targets)


def adain_feature_losses(f_o: dict[str, torch.Tensor], t: torch.Tensor,
                         targets: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`adain_losses` on an output's VGG features ``f_o`` already at hand (raw scale, every target layer)."""
    scale = LAYER_SCALE[ENCODER_LAYER]
    loss_c = content_loss(f_o[ENCODER_LAYER] / scale, t / scale)
    loss_s = sum(mean_std_loss(f_o[k] / LAYER_SCALE[k], *targets[k]) for k in targets)
    return loss_c, loss_s  # type: ignore[return-value]


class PerceptualLoss:
    """Content + Gram + moment + TV loss against a fixed set of style images."""

    def __init__(self, vgg: VGG19, styles: list[torch.Tensor], weights: LossWeights | None = None) -> None:
        self.vgg, self.w = vgg, weights or LossWeights()
        self.layers = tuple(self.w.style_layers)
        grams: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        means: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        stds: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        with torch.no_grad():
            for style in styles:
                feats = vgg(style.float(), self.layers)
                for layer in self.layers:
                    grams[layer].append(gram(feats[layer])[0])
                    m, s = mean_std(feats[layer])
                    means[layer].append(m.flatten())
                    stds[layer].append(s.flatten())
        self.grams = {k: torch.stack(v) for k, v in grams.items()}  # (S, C, C)
        self.gram_norm = {k: v.pow(2).mean(dim=(1, 2)) + 1e-8 for k, v in self.grams.items()}  # (S,)
        self.means = {k: torch.stack(v) for k, v in means.items()}  # (S, C)
        self.stds = {k: torch.stack(v) for k, v in stds.items()}
        self.moment_norm = {k: (self.means[k].pow(2) + self.stds[k].pow(2)).mean(1) + 1e-8 for k in self.layers}

    @property
    def n_styles(self) -> int:
        return next(iter(self.grams.values())).shape[0]

    def __call__(self, output: torch.Tensor, content: torch.Tensor, style_index: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts for a batch; ``style_index`` (B,) defaults to style 0 for all."""
        if style_index is None:
            style_index = torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
        cl = self.w.content_layer
        with torch.no_grad():
            target = self.vgg(content, [cl])[cl].float()
        feats = self.vgg(output, (*self.layers, cl))
        content_term = F.mse_loss(feats[cl].float(), target) / (target.pow(2).mean() + 1e-8)
        style_term = output.new_zeros((), dtype=torch.float32)
        moment_term = output.new_zeros((), dtype=torch.float32)
        for layer in self.layers:
            f = feats[layer]
            g = gram(f)
            err = (g - self.grams[layer][style_index]).pow(2).mean(dim=(1, 2)) / self.gram_norm[layer][style_index]
            style_term = style_term + err.mean()
            m, s = mean_std(f)
            m_err = (m.flatten(1) - self.means[layer][style_index]).pow(2).mean(1)
            s_err = (s.flatten(1) - self.stds[layer][style_index]).pow(2).mean(1)
            moment_term = moment_term + ((m_err + s_err) / self.moment_norm[layer][style_index]).mean()
        style_term = style_term / len(self.layers)
        moment_term = moment_term / len(self.layers)
        tv_term = tv_loss(output.float())
        total = (self.w.content * content_term + self.w.style * style_term
                 + self.w.moments * moment_term + self.w.tv * tv_term)
        parts = {k: float(v.detach()) for k, v in
                 (("content", content_term), ("style", style_term), ("moments", moment_term), ("tv", tv_term))}
        return total, parts
