"""Full resolution in tiles: tiled output matches the untiled one (no seams), far closer than naive tiling;
the "all styles" sheet's batched presets equal one-by-one runs; HEIC and AVIF decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import _pattern
from PIL import Image

from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.image import load_image, pil_to_tensor
from stylizer.tiling import ALIGN, _starts, run_tiled

CASES = [("starry_night", "cin", 0.01), ("johnson_udnie", "johnson", 0.01), (None, "adain", 0.02)]


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer()


def _photo() -> Image.Image:
    return _pattern((256, 384), seed=3)  # already the output size: no resizing anywhere


def _run(stylizer: Stylizer, content: Image.Image, method: str, preset: str | None, tile: int) -> torch.Tensor:
    styles = [StyleRef(preset=preset)] if preset else [StyleRef(image=_pattern((128, 128), seed=8))]
    result = stylizer.stylize(StylizeRequest(content=content, styles=styles, method=method, size=None, tile=tile,
                                             device="cpu"))
    return pil_to_tensor(result.image, "cpu")


@pytest.mark.parametrize(("preset", "method", "bar"), CASES)
def test_tiled_matches_untiled_without_seams(stylizer: Stylizer, preset: str | None, method: str,
                                             bar: float) -> None:
    if method not in stylizer.methods():
        pytest.fail(f"{method} weights are missing from weights/")
    photo = _photo()
    whole = _run(stylizer, photo, method, preset, tile=0)
    tiled = _run(stylizer, photo, method, preset, tile=192)  # 2 x 2 tiles, 96 px overlap
    # naive: every tile stylized on its own (own statistics, cropped context), pasted edge to edge
    naive = torch.zeros_like(whole)
    for y in (0, 128, 256):
        for x in (0, 128):
            crop = photo.crop((x, y, x + 128, y + 128))
            naive[..., y:y + 128, x:x + 128] = _run(stylizer, crop, method, preset, tile=0)
    tiled_err, naive_err = (tiled - whole).abs(), (naive - whole).abs()
    assert tiled.shape == whole.shape == (1, 3, 384, 256)
    assert tiled_err.mean() < bar and tiled_err.mean() < naive_err.mean() / 3
    # no seam: along the tile borders the tiled output is as close to the whole picture as elsewhere
    border = torch.cat([tiled_err[..., 188:196, :].flatten(), tiled_err[..., :, 188:196].flatten()])
    assert border.mean() < 2 * tiled_err.mean() + 0.005


def test_tile_origins_are_aligned_and_cover() -> None:
    for length in (100, 257, 1000, 4096):
        starts = _starts(length, 256, 128)
        assert starts[0] == 0 and all(s % ALIGN == 0 for s in starts)
        assert starts[-1] + 256 >= length - ALIGN + 1  # the last tile reaches the end (it may run up to 7 px long)
    out = run_tiled(lambda t: t * 2, torch.rand(1, 3, 300, 200), tile=64, overlap=16)
    assert out.shape == (1, 3, 300, 200)


def test_all_styles_batch_equals_one_by_one(stylizer: Stylizer) -> None:
    names = [p.name for p in stylizer.manifest.enabled_presets()][:6]
    assert len(names) >= 6
    photo = _pattern((96, 64), seed=2)
    seen = []
    batched = stylizer.stylize_presets(StylizeRequest(content=photo, styles=[], size=96, device="cpu",
                                                      progress=seen.append), names)
    assert [n for n, _ in batched] == names and seen[-1].step == seen[-1].total == len(names)
    for name, picture in batched:
        alone = stylizer.stylize(StylizeRequest(content=photo, styles=[StyleRef(preset=name)], size=96, device="cpu"))
        diff = np.abs(np.asarray(picture, dtype=np.float32) - np.asarray(alone.image, dtype=np.float32)) / 255
        assert picture.size == alone.image.size and diff.mean() < 0.01, name


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP"])
def test_iphone_and_modern_formats_decode(fmt: str) -> None:
    buf = io.BytesIO()
    _pattern((96, 64), seed=4).save(buf, fmt)
    image = load_image(buf.getvalue())
    assert image.size == (96, 64) and image.mode == "RGB"
