"""Procedural style pictures: every kind, deterministic per seed, the requested size, palette colours used."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylizer.train.styles import KINDS, generate, palette_of


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_deterministic_and_textured(kind: str) -> None:
    a, b, c = generate(kind, 7, (96, 128)), generate(kind, 7, (96, 128)), generate(kind, 8, (96, 128))
    assert a.size == (128, 96) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))  # same seed, same picture
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    pixels = np.asarray(a, dtype=np.float32) / 255
    assert pixels.std() > 0.05  # a texture, not a flat fill


def test_palette_of_a_picture_colours_the_texture() -> None:
    red_blue = Image.new("RGB", (64, 64), (220, 20, 20))
    red_blue.paste((20, 20, 220), (0, 0, 32, 64))
    palette = palette_of(red_blue, 2)
    picture = np.asarray(generate("mosaic", 1, (64, 64), palette), dtype=np.float32) / 255
    mean = picture.reshape(-1, 3).mean(0)
    assert mean[1] < 0.25 < max(mean[0], mean[2])  # reds and blues, hardly any green
