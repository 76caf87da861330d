"""Tiled inference for the feed-forward methods: full resolution in bounded memory, without seams.

Cutting a picture into tiles and stylizing each one shows seams for two reasons, each handled here:

1. Pixels near a tile's edge see a cropped receptive field. Tiles overlap by ``overlap`` pixels and are
   blended with linear ramps across the overlap, so every output pixel comes mostly from a tile in
   which it sits far from the edge.
2. Instance norm and AdaIN normalise with statistics of the *whole* input; per tile they would differ
   and every tile would get its own tone. A first pass over the whole picture, downscaled to at most
   ``stats_side``, records every normalisation's statistics on a :class:`~stylizer.features.NormTape`,
   and each tile's pass replays them.

Tile origins sit on multiples of :data:`ALIGN`: the nets downsample by 4 and are only equivariant to
shifts by their stride (the same reason :mod:`stylizer.temporal` aligns video frames), so every tile
samples the picture on the grid the untiled pass would have used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import image as img
from .features import NormTape
from .image import TILE_SIDE

OVERLAP = 128
#: Long side of the statistics pass.
STATS_SIDE = 1024
ALIGN = 8


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Aligned tile origins covering ``[0, length)``; the last tile may run up to ALIGN - 1 px longer."""
    if length <= tile:
        return [0]
    last = (length - tile) // ALIGN * ALIGN
    starts = list(range(0, last, step))
    return [*starts, last]


def _ramp(length: int, fade_in: int, fade_out: int) -> torch.Tensor:
    """1 in the middle, rising over ``fade_in`` and falling over ``fade_out`` pixels (never exactly 0)."""
    w = torch.ones(length)
    if fade_in:
        w[:fade_in] = torch.linspace(0, 1, fade_in + 2)[1:-1]
    if fade_out:
        w[length - fade_out:] = torch.linspace(1, 0, fade_out + 2)[1:-1]
    return w


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int = TILE_SIDE,
              overlap: int = OVERLAP, stats_side: int = STATS_SIDE,
              progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``fn(x)`` computed tile by tile; ``fn`` maps (N, 3, h, w) to (N, 3, h, w) and normalises through
    :mod:`stylizer.features` (``instance_norm`` / ``norm_stats``). Returns float32 on ``x``'s device."""
    n, _, height, width = x.shape
    if max(height, width) <= tile:
        return fn(x).float()
    tile = max(ALIGN * 4, tile // ALIGN * ALIGN)
    overlap = min(overlap // ALIGN * ALIGN, tile // 2)
    step = tile - overlap
    ys, xs = _starts(height, tile, step), _starts(width, tile, step)
    with NormTape() as tape:
        small = img.resize_tensor(x, _fit(height, width, stats_side)) if max(height, width) > stats_side else x
        fn(small)  # records the statistics; its output is not needed
        out = torch.zeros(n, 3, height, width, device=x.device)
        total = torch.zeros(1, 1, height, width, device=x.device)
        y_ends = [*(y0 + tile for y0 in ys[:-1]), height]
        x_ends = [*(x0 + tile for x0 in xs[:-1]), width]
        done, count = 0, len(ys) * len(xs)
        for i, (y0, y1) in enumerate(zip(ys, y_ends, strict=True)):
            wy = _ramp(y1 - y0, y_ends[i - 1] - y0 if i else 0, y1 - ys[i + 1] if i + 1 < len(ys) else 0)
            for j, (x0, x1) in enumerate(zip(xs, x_ends, strict=True)):
                wx = _ramp(x1 - x0, x_ends[j - 1] - x0 if j else 0, x1 - xs[j + 1] if j + 1 < len(xs) else 0)
                tape.replay()
                piece = fn(x[..., y0:y1, x0:x1]).float()
                weight = (wy[:, None] * wx[None, :]).to(x.device)[None, None]
                out[..., y0:y1, x0:x1] += piece * weight
                total[..., y0:y1, x0:x1] += weight
                done += 1
                if progress is not None:
                    progress(done, count)
    return out / total


def _fit(height: int, width: int, side: int) -> tuple[int, int]:
    scale = side / max(height, width)
    return max(ALIGN, round(height * scale)), max(ALIGN, round(width * scale))
