"""Image loading edge cases: everything either becomes an upright RGB picture or an ImageError."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylizer.errors import ImageError
from stylizer.image import (
    MAX_PIXELS,
    MIN_SIDE,
    blend,
    image_digest,
    list_images,
    load_image,
    pil_to_tensor,
    resize_long_side,
    resize_tensor,
    save_image,
    tensor_to_pil,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 12000, height: int = 12000) -> bytes:
    """A ~60-byte PNG whose header claims ``width`` x ``height`` RGB: decoding it would need 432 MB."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)  # a scrap of the first row; never reached if the guard works
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def bomb_jpeg(width: int = 12000, height: int = 12000) -> bytes:
    """A small real JPEG with its SOF0 frame header patched to claim ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_rgb_jpeg_path_and_bytes(tmp_path: Path, content_image: Image.Image) -> None:
    path = tmp_path / "c.jpg"
    content_image.save(path, quality=95)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), content_image):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (96, 64)


@pytest.mark.parametrize("maker", [bomb_png, bomb_jpeg], ids=["png", "jpeg"])
def test_header_bomb_is_refused_without_decoding(maker) -> None:
    data = maker()
    assert len(data) < 2000
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        load_image(data)
    assert time.perf_counter() - t0 < 2.0  # generous: it must not have decoded 144 MP


def test_pixel_limit_below_pillows_own_guard() -> None:
    # 8000x8000 = 64 MP: under Pillow's bomb warning (89 MP) but over our MAX_PIXELS.
    assert MAX_PIXELS < 8000 * 8000
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb_png(8000, 8000))


def test_truncated_jpeg(content_image: Image.Image) -> None:
    data = _encode(content_image, "JPEG", quality=90)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_truncated_png(content_image: Image.Image) -> None:
    data = _encode(content_image, "PNG")
    with pytest.raises(ImageError):
        load_image(data[: len(data) - 40])


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE - 1, 300), (300, 2)])
def test_too_small(size: tuple[int, int]) -> None:
    with pytest.raises(ImageError, match="too small"):
        load_image(_encode(Image.new("RGB", size), "PNG"))


def test_min_side_is_accepted() -> None:
    assert load_image(_encode(Image.new("RGB", (MIN_SIDE, MIN_SIDE)), "PNG")).size == (MIN_SIDE, MIN_SIDE)


def test_png_with_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 16, 32))  # left half fully transparent blue
    image = load_image(_encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((4, 4)) == (255, 255, 255)
    assert image.getpixel((28, 4)) == (255, 0, 0)


def test_la_grayscale_with_alpha() -> None:
    la = Image.new("LA", (20, 20), (0, 128))
    px = load_image(_encode(la, "PNG")).getpixel((5, 5))
    assert all(120 <= c <= 135 for c in px)  # black at half opacity over white


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    data = _encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (40, 30)
    r, g, b = image.getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_6_swaps_dimensions() -> None:
    # A landscape 40x24 picture with a bright top-left corner, stored with "rotate 90 CW to view".
    base = Image.new("RGB", (40, 24), (0, 0, 0))
    base.paste((255, 255, 255), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(base, "JPEG", quality=95, exif=exif.tobytes())
    image = load_image(data)
    assert image.size == (24, 40)
    # Rotating 90 degrees clockwise moves the top-left corner to the top-right.
    assert sum(image.getpixel((20, 3))) > 600
    assert sum(image.getpixel((3, 3))) < 100


def test_palette_png_and_gif() -> None:
    p = Image.new("P", (30, 30))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.paste(1, (0, 0, 30, 15))
    for fmt in ("PNG", "GIF"):
        image = load_image(_encode(p, fmt))
        assert image.mode == "RGB"
        assert image.getpixel((5, 5)) == (10, 200, 30)
        assert image.getpixel((5, 25)) == (0, 0, 0)


def test_palette_with_transparency() -> None:
    p = Image.new("P", (30, 30), 1)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    data = _encode(p, "PNG", transparency=1)
    assert load_image(data).getpixel((3, 3)) == (255, 255, 255)


def test_16_bit_grayscale_png() -> None:
    ramp = (np.linspace(0, 65535, 64, dtype=np.float64)[None, :].repeat(20, axis=0)).astype(np.uint16)
    image16 = Image.fromarray(ramp)
    assert image16.mode.startswith("I;16")
    data = _encode(image16, "PNG")
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (64, 20)
    row = [image.getpixel((x, 10))[0] for x in (0, 32, 63)]
    assert row[0] <= 2 and 120 <= row[1] <= 135 and row[2] >= 253


def test_grayscale_jpeg() -> None:
    gray = Image.linear_gradient("L").resize((50, 40))
    image = load_image(_encode(gray, "JPEG"))
    assert image.mode == "RGB"
    r, g, b = image.getpixel((25, 20))
    assert r == g == b


def test_float_mode_image_object() -> None:
    f = Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32), "F")
    assert load_image(f).getpixel((1, 1)) == (127, 127, 127)


def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"%PDF-1.4 definitely not a picture" * 10)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ImageError):
        load_image(text)
    with pytest.raises(ImageError):
        load_image(b"")


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, _g, b = load_image(buf.getvalue()).getpixel((10, 10))
    assert r > 200 and b < 50


def test_tensor_round_trip(content_image: Image.Image) -> None:
    tensor = pil_to_tensor(content_image)
    assert tensor.shape == (1, 3, 64, 96) and tensor.dtype == torch.float32
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    back = tensor_to_pil(tensor)
    assert np.array_equal(np.asarray(back), np.asarray(content_image))
    assert tensor_to_pil(tensor[0] * 3 - 1).size == (96, 64)  # clamped, 3-dim accepted


def test_resize_helpers(content_image: Image.Image) -> None:
    assert resize_long_side(content_image, 48).size == (48, 32)
    assert resize_long_side(content_image, 192).size == (192, 128)
    assert resize_long_side(content_image, 192, allow_upscale=False).size == (96, 64)
    assert resize_long_side(content_image, None) is content_image
    t = pil_to_tensor(content_image)
    assert resize_tensor(t, (32, 48)).shape == (1, 3, 32, 48)
    assert resize_tensor(t, (64, 96)) is t


def test_blend() -> None:
    content, styled = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert blend(content, styled, 1.0) is styled
    torch.testing.assert_close(blend(content, styled, 0.25), torch.full((1, 3, 8, 8), 0.25))
    assert blend(torch.zeros(1, 3, 16, 16), styled, 0.5).shape == (1, 3, 8, 8)


def test_digest_and_listing(tmp_path: Path, content_image: Image.Image) -> None:
    assert image_digest(content_image) == image_digest(content_image.copy())
    assert image_digest(content_image) != image_digest(content_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    for name in ("b.PNG", "a.jpg", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    out = tmp_path / "deep" / "out.jpg"
    save_image(content_image, out)
    assert load_image(out).size == (96, 64)
