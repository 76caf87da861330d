"""Procedural style pictures: what users send as a "style" besides paintings (textures, mosaics, patterns).

37 paintings are too few, and too much of one kind, to calibrate or train an arbitrary-style model that
must also hold on a fabric, a micrograph or a tiled floor. These generators make such pictures on demand,
deterministically from a seed, coloured with palettes taken from real pictures (or random ones):

* ``noise``: fractal value noise through a palette gradient (clouds, marble, stains);
* ``mosaic``: Voronoi cells in palette colours with dark grout (tiles, cells under a microscope);
* ``stripes``: noise-warped bands (fabric, agate, wood grain);
* ``strokes``: many short thick strokes over a base colour (brushwork without a subject).

Used by ``bench/adain_kinds.py`` for validation on non-painting styles (and meant for training data).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("noise", "mosaic", "stripes", "strokes")


def palette_of(image: Image.Image, colours: int = 6) -> np.ndarray:
    """The ``colours`` dominant colours of a picture, (k, 3) floats in 0..1 (median-cut quantisation)."""
    small = image.convert("RGB").resize((96, 96))
    quantised = small.quantize(colours, method=Image.Quantize.MEDIANCUT)
    flat = quantised.getpalette()[: 3 * colours]  # type: ignore[index]
    return np.asarray(flat, dtype=np.float32).reshape(-1, 3) / 255.0


def random_palette(rng: np.random.Generator, colours: int = 5) -> np.ndarray:
    """Colours spread in hue with random lightness: a palette no painting here has."""
    hues = (rng.uniform() + np.sort(rng.uniform(0, 1, colours))) % 1.0
    hsv = np.stack([hues, rng.uniform(0.3, 1.0, colours), rng.uniform(0.15, 1.0, colours)], -1)
    image = Image.fromarray((hsv[None] * 255).astype(np.uint8), "HSV").convert("RGB")
    return np.asarray(image, dtype=np.float32)[0] / 255.0


def _value_noise(rng: np.random.Generator, size: tuple[int, int], octaves: int = 5) -> np.ndarray:
    """Fractal noise in 0..1: random grids upsampled (bicubic) and summed with halving amplitudes."""
    h, w = size
    total = np.zeros((h, w), dtype=np.float32)
    amplitude, cells = 1.0, 3
    for _ in range(octaves):
        grid = Image.fromarray((rng.uniform(0, 255, (cells, cells))).astype(np.uint8), "L")
        total += amplitude * np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255
        amplitude, cells = amplitude / 2, cells * 2
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _through_palette(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map 0..1 values onto a gradient through the palette's colours (ordered by lightness)."""
    ordered = palette[np.argsort(palette @ np.array([0.299, 0.587, 0.114], dtype=np.float32))]
    positions = np.linspace(0, 1, len(ordered))
    return np.stack([np.interp(values, positions, ordered[:, c]) for c in range(3)], -1)


def noise(rng: np.random.Generator, size: tuple[int, int], palette: np.ndarray) -> np.ndarray:
    values = _value_noise(rng, size)
    if rng.uniform() < 0.5:  # marble: veins where a sine of the noise crosses zero
        values = 0.5 + 0.5 * np.sin(values * rng.uniform(8, 20))
    return _through_palette(values, palette)


def mosaic(rng: np.random.Generator, size: tuple[int, int], palette: np.ndarray) -> np.ndarray:
    h, w = size
    count = max(6, int(rng.integers(40, 400) * h * w / 512**2))  # cells per area, whatever the size
    seeds = rng.uniform(0, 1, (count, 2)) * np.array([h, w], dtype=np.float32)
    colours = palette[rng.integers(0, len(palette), count)] * rng.uniform(0.8, 1.15, (count, 1))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    best = np.full((h, w), np.inf, dtype=np.float32)
    second = np.full((h, w), np.inf, dtype=np.float32)
    owner = np.zeros((h, w), dtype=np.int64)
    for i, (sy, sx) in enumerate(seeds):
        d = (ys - sy) ** 2 + (xs - sx) ** 2
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        owner = np.where(closer, i, owner)
        best = np.where(closer, d, best)
    out = colours[owner]
    grout = (np.sqrt(second) - np.sqrt(best)) < rng.uniform(1.0, 3.0)
    out[grout] = palette.min(0) * 0.5
    return np.clip(out, 0, 1)


def stripes(rng: np.random.Generator, size: tuple[int, int], palette: np.ndarray) -> np.ndarray:
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 40)
    warp = _value_noise(rng, size, octaves=3) * rng.uniform(5, 40)
    phase = (xs * np.cos(angle) + ys * np.sin(angle) + warp) / period
    values = (phase % 1.0) if rng.uniform() < 0.5 else 0.5 + 0.5 * np.sin(2 * np.pi * phase)
    return _through_palette(values, palette)


def strokes(rng: np.random.Generator, size: tuple[int, int], palette: np.ndarray) -> np.ndarray:
    h, w = size
    base = tuple(int(c * 255) for c in palette[rng.integers(0, len(palette))])
    image = Image.new("RGB", (w, h), base)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image)
    length, width = rng.uniform(0.03, 0.12) * max(h, w), int(rng.uniform(0.006, 0.03) * max(h, w)) + 1
    angle0 = rng.uniform(0, np.pi)
    for _ in range(int(rng.integers(300, 1500))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = angle0 + rng.normal(0, 0.6)
        dx, dy = np.cos(a) * length / 2, np.sin(a) * length / 2
        colour = np.clip(palette[rng.integers(0, len(palette))] * rng.uniform(0.75, 1.2), 0, 1)
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c * 255) for c in colour), width=width)
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(image, dtype=np.float32) / 255.0


_GENERATORS = {"noise": noise, "mosaic": mosaic, "stripes": stripes, "strokes": strokes}


def generate(kind: str, seed: int, size: tuple[int, int] = (512, 512), palette: np.ndarray | None = None,
             ) -> Image.Image:
    """One procedural style picture of ``kind`` (see :data:`KINDS`), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    colours = palette if palette is not None else random_palette(rng)
    pixels = _GENERATORS[kind](rng, size, colours)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
