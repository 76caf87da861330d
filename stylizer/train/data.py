"""Training data: random crops of content photos and heavily augmented style paintings.

Plain torch + Pillow (torchvision is unavailable on the CPU machines). Images are decoded once and
kept in memory when ``cache`` is set: the shared folders are small (991 photos, 37 paintings), and
decoding dominates a GPU step otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ..errors import ImageError, StylizerError
from ..image import list_images, load_image

#: Every N-th content photo (sorted by name) is held out of training for evaluation.
HOLDOUT_EVERY = 100


def split_content(content_dir: Path) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos) of a folder: every HOLDOUT_EVERY-th sorted image is held out."""
    paths = list_images(Path(content_dir))
    held = paths[::HOLDOUT_EVERY] if len(paths) >= HOLDOUT_EVERY else []
    train = [p for p in paths if p not in set(held)]
    return train, held


def resize_short_side(image: Image.Image, short: int) -> Image.Image:
    w, h = image.size
    scale = short / min(w, h)
    return image.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.Resampling.BICUBIC)


def random_crop(image: Image.Image, crop: int, rng: random.Random) -> Image.Image:
    """A ``crop`` x ``crop`` window; images smaller than ``crop`` are upscaled first."""
    if min(image.size) < crop:
        image = resize_short_side(image, crop)
    w, h = image.size
    x, y = rng.randint(0, w - crop), rng.randint(0, h - crop)
    return image.crop((x, y, x + crop, y + crop))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


class StyleAugment:
    """Random resized crops at several scales, flips, 90° rotations and colour jitter.

    With only a few dozen paintings, the AdaIN decoder would otherwise memorise their statistics;
    these variations make it generalise to unseen styles.
    """

    def __init__(self, crop: int, scale: tuple[float, float] = (0.1, 1.0), jitter: float = 0.3,
                 grayscale_p: float = 0.05) -> None:
        self.crop, self.scale, self.jitter, self.grayscale_p = crop, scale, jitter, grayscale_p

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        w, h = image.size
        area = w * h * rng.uniform(*self.scale)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = min(w, max(8, round((area * aspect) ** 0.5)))
        ch = min(h, max(8, round((area / aspect) ** 0.5)))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = image.crop((x, y, x + cw, y + ch)).resize((self.crop, self.crop), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        if rng.random() < 0.25:
            image = image.rotate(90 * rng.randint(1, 3))
        if self.jitter:
            for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhance(image).enhance(rng.uniform(1 - self.jitter, 1 + self.jitter))
            if rng.random() < 0.5:
                hsv = np.asarray(image.convert("HSV"), dtype=np.int16).copy()
                hsv[..., 0] = (hsv[..., 0] + rng.randint(-20, 20)) % 256
                image = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
        if rng.random() < self.grayscale_p:
            image = image.convert("L").convert("RGB")
        return image


class ImageFolderDataset(Dataset):
    """Images of a folder as random square crops.

    ``size``: resize so the short side is ``size`` before cropping (None keeps the file's size);
    ``crop``: output side; ``augment``: a :class:`StyleAugment` (replaces resize+crop) or None for
    content-style random crops with horizontal flips.
    """

    def __init__(self, folder: Path | str, crop: int, size: int | None = None,
                 augment: StyleAugment | None = None, cache: bool = True) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise StylizerError(f"{self.folder}: not a folder")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise StylizerError(f"{self.folder}: no images found")
        self.crop, self.size, self.augment, self.cache = crop, size, augment, cache
        self._images: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, index: int) -> Image.Image:
        if index in self._images:
            return self._images[index]
        try:
            image = load_image(self.paths[index])
        except ImageError:
            image = Image.new("RGB", (self.crop, self.crop), (127, 127, 127))  # a bad file must not kill training
        if self.size and self.augment is None:
            image = resize_short_side(image, self.size)
        if self.cache:
            self._images[index] = image
        return image

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = random.Random(torch.randint(0, 2**31 - 1, ()).item())
        image = self._image(index)
        if self.augment is not None:
            return to_tensor(self.augment(image, rng))
        image = random_crop(image, self.crop, rng)
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        return to_tensor(image)


def infinite_batches(dataset: Dataset, batch_size: int, workers: int = 0,
                     device: torch.device | str = "cpu", seed: int | None = None) -> Iterator[torch.Tensor]:
    """Endless stream of (B, 3, crop, crop) batches on ``device``, sampled with replacement."""
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**9, generator=generator)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
        pin_memory=torch.device(device).type == "cuda", persistent_workers=workers > 0,
    )
    for batch in loader:
        yield batch.to(device, non_blocking=True)
