"""Image loading, validation and tensor conversion: the only place that touches Pillow for input.

Every entry point (CLI, bot, training, benchmarks) goes through :func:`load_image`, so EXIF rotation,
exotic modes (RGBA, P, CMYK, 16-bit, grayscale), decompression bombs and pixel limits are handled
once and consistently. Anything unusable becomes an :class:`~stylizer.errors.ImageError`.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

if TYPE_CHECKING:  # torch loads with the first tensor: the CLI's OpenVINO path decodes and saves without it
    import torch

try:  # iPhone photos (HEIC/HEIF): pillow-heif adds the format to Pillow's openers
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - an installation without it reads every other format
    pass
else:
    register_heif_opener()

#: Refuse to decode anything larger than this many pixels (a 12000x12000 header is 144 MP).
MAX_PIXELS = 50_000_000
#: Smallest usable side: VGG pools five times, so below this the style statistics are meaningless.
MIN_SIDE = 16
#: Long side of an output when the caller does not say.
DEFAULT_SIZE = 512
#: Largest output side we accept; Telegram photos cap at 10000 px width+height anyway.
MAX_SIDE = 4096
#: Long side above which tileable methods run tile by tile (:mod:`stylizer.tiling`; about 1.5 GiB peak for CIN in
#: float32 on the CPU).
TILE_SIDE = 1024
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif",
                              ".heic", ".heif"})
#: Clips :mod:`stylizer.video` takes (a ``.gif`` counts as a clip only when it is animated).
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif"})

ImageSource = str | Path | bytes | BinaryIO | Image.Image
#: The decoders Pillow may run on a file we are given (``Image.open(..., formats=)``): what cameras, phones and
#: browsers write. Pillow would otherwise try each of its ~40 plugins, rarely used and rarely fuzzed ones included.
#: (JPEG covers MPO, which some cameras write: Pillow's JPEG opener returns it.) Only those this Pillow registers.
Image.init()
IMAGE_FORMATS = tuple(f for f in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF") if f in Image.OPEN)


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode ``source`` into an upright 8-bit RGB image, or raise :class:`ImageError`.

    The pixel limit is checked on the header before decoding, so a tiny file that claims to be
    12000x12000 costs nothing. Transparent images are composited on white, which is what a user
    expects to see from a sticker-like PNG.
    """
    if isinstance(source, Image.Image):
        image = source
        image.load()
    else:
        name = str(source) if isinstance(source, str | Path) else "image"
        try:
            if isinstance(source, bytes):
                source = io.BytesIO(source)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(source, formats=IMAGE_FORMATS)
                _check_size(image.size, max_pixels, min_side)
                image.load()
        except ImageError:
            raise
        except FileNotFoundError as exc:
            raise ImageError(f"{name}: no such file") from exc
        except IsADirectoryError as exc:
            raise ImageError(f"{name}: is a directory, not an image") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"{name}: not an image in a format I take "
                             "(JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, HEIC)") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{name}: image is too large (decompression bomb guard)") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    _check_size(image.size, max_pixels, min_side)
    if getattr(image, "is_animated", False):
        image.seek(0)
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def _check_size(size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"image is too large: {width}x{height} is over the limit of {max_pixels / 1e6:.0f} megapixels"
        )
    if min(width, height) < min_side:
        raise ImageError(f"image is too small: {width}x{height}, each side must be at least {min_side} px")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; alpha is composited on white, CMYK uses Pillow's ICC-less path."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(np.clip(array * (255.0 if array.max() <= 1 else 1), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def resize_long_side(image: Image.Image, long_side: int | None, *, allow_upscale: bool = True) -> Image.Image:
    """Resize so the longer side is ``long_side`` (kept even: the decoders upsample by powers of two)."""
    if not long_side:
        return image
    width, height = image.size
    scale = long_side / max(width, height)
    if scale > 1 and not allow_upscale:
        return image
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) == (width, height):
        return image
    return image.resize((new_w, new_h), Image.Resampling.LANCZOS)


def edge_margin(size: Sequence[int]) -> int:
    """The reflected margin fast methods see around a picture of ``size`` (H, W): 1/16 of the long side, 32 to 64 px
    (the nets' reach is in pixels: a 160 px picture with 16 px still measured 1.9 for AdaIN).

    Why: feed-forward nets draw a stripe a few pixels in from the edges (their zero-padded convolutions, and the
    padding to a multiple of 8 at the bottom and right). Measured (issue 32; a photo as it is against the same
    photo reflect-padded by 64 px and cropped back, the outer 12 px band's difference over the interior's, median of
    3 held-out photos at 384 px): no margin AdaIN 2.48, CIN 2.27, Johnson 2.80; a 32 px margin 0.87, 1.11, 1.09. It
    costs the margin's pixels: 1.27x at 512 px.
    """
    return min(64, max(32, round(max(size) / 16)))


def padding_to_multiple(height: int, width: int, multiple: int) -> tuple[int, int, bool]:
    """(bottom, right, reflect): the padding that makes both sides divide by ``multiple`` (the student and the
    decoders pool, then upsample, three times), by reflection unless the picture is thinner than the padding (then
    its edge is repeated). The torch engines and the torch-free ones (:mod:`stylizer.onnx_engine`) all pad so."""
    bottom, right = (-height) % multiple, (-width) % multiple
    return bottom, right, min(height, width) > max(bottom, right)


def pil_to_tensor(image: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    import torch

    tensor = torch.from_numpy(np.asarray(to_rgb(image), dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=torch.float32).div_(255.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL image (values clamped)."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def resize_tensor(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of a (N, C, H, W) tensor to ``size`` = (H, W)."""
    import torch.nn.functional as F

    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True)


def blend(content: torch.Tensor, stylized: torch.Tensor, strength: float) -> torch.Tensor:
    """Pixel-space strength for methods whose networks have no natural interpolation knob."""
    if strength >= 1.0:
        return stylized
    import torch

    content = resize_tensor(content, tuple(stylized.shape[-2:]))
    return torch.lerp(content, stylized, float(strength))


def image_digest(image: Image.Image) -> str:
    """A stable key for caching per-image work (style statistics): hash of size, mode and pixels."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def list_images(folder: Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files (or files of ``extensions``) directly inside ``folder``, sorted by name, hidden ones skipped."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")
    )


def is_video_file(path: Path) -> bool:
    """By name, without loading the video libraries: mp4/mov/webm/...; a GIF only when it is animated."""
    suffix = path.suffix.lower()
    if suffix == ".gif":
        try:
            with Image.open(path, formats=("GIF",)) as im:
                return bool(getattr(im, "is_animated", False))
        except OSError:
            return False
    return suffix in VIDEO_EXTENSIONS


def list_media(folder: Path) -> list[Path]:
    """Images and clips directly inside ``folder``, sorted by name (hidden files skipped)."""
    return list_images(folder, IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)


def save_image(image: Image.Image, path: Path, *, quality: int = 95) -> None:
    """Save by extension; JPEG gets high quality and no chroma subsampling (style detail lives there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        image.save(path, quality=quality, subsampling=0, optimize=True)
    elif suffix == ".webp":
        image.save(path, quality=quality)
    elif suffix == ".png":
        # zlib level 3 instead of Pillow's 6 (~2.5x faster to encode), and run-length matching only after PNG's
        # row filters: a stylized picture has few long repeats for deflate to find, so this takes a third less
        # time again (108 -> 72 ms a megapixel) for 7 % smaller files (photos: 1 % larger, 86 -> 55 ms).
        image.save(path, compress_level=3, compress_type=zlib.Z_RLE)
    else:
        image.save(path)
