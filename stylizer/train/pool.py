"""Style pictures of every kind a user may send, for the trainers that learn arbitrary style (the AdaIN student,
the teacher decoder's fine-tune), and the styles held out of them for validation.

37 paintings are too few and too much of one kind: a net trained on them alone under-styles textures,
micrographs and photos sent as styles (issue 11). :class:`StylePool` mixes paintings (augmented: crops at several
scales, flips, rotations, colour jitter), photos as styles, procedural textures coloured with the paintings'
palettes (:mod:`stylizer.train.styles`) and pictures PyPI packages ship (``scripts/pypi_styles``). Named paintings
and extra pictures, texture seeds below :data:`TRAIN_SEEDS_FROM` and a few photos never enter training: they are
the validation grid.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import image as img
from .data import HOLDOUT_EVERY, StyleAugment, split_content, to_tensor
from .styles import KINDS, generate, palette_of, random_palette

#: Styles never trained on (validation): paintings of ../shared and pictures from PyPI packages.
HELD_OUT_PAINTINGS = ("hokusai_great_wave.jpg", "kahlo_self_portrait.jpg", "en_campo_gris.jpg", "trial.jpg")
HELD_OUT_EXTRA = ("hubble_deep_field", "ihc", "retina")
#: Procedural textures with seeds below this are validation only.
TRAIN_SEEDS_FROM = 10_000
#: Share of each kind of style among training samples.
KIND_SHARES = {"painting": 0.4, "texture": 0.25, "photo": 0.2, "extra": 0.15}


class StylePool:
    """Random style pictures of every kind a user may send, and the held-out validation styles."""

    def __init__(self, style_dir: Path, content_dir: Path, crop: int, extra_styles: Path | None = None) -> None:
        paintings = img.list_images(style_dir)
        self.paintings = [p for p in paintings if p.name not in HELD_OUT_PAINTINGS]
        self.val_paintings = [p for p in paintings if p.name in HELD_OUT_PAINTINGS]
        extra = img.list_images(extra_styles) if extra_styles and Path(extra_styles).is_dir() else []
        self.extra = [p for p in extra if p.stem not in HELD_OUT_EXTRA]
        self.val_extra = [p for p in extra if p.stem in HELD_OUT_EXTRA]
        train, held = split_content(content_dir)
        # photos as styles for validation: the ones halfway between held-out contents (every 100th from the 50th)
        val_photo_styles = set(img.list_images(content_dir)[HOLDOUT_EVERY // 2::HOLDOUT_EVERY])
        self.photos = [p for p in train if p not in val_photo_styles]
        self.val_photo_styles = sorted(val_photo_styles - set(held))
        self.crop = crop
        self.augment = StyleAugment(crop)
        self.photo_augment = StyleAugment(crop, jitter=0.5)
        self._cache: dict[Path, Image.Image] = {}
        self._palettes: dict[Path, np.ndarray] = {}

    def _load(self, path: Path) -> Image.Image:
        if path not in self._cache:
            pil = img.load_image(path).convert("RGB")
            self._cache[path] = img.resize_long_side(pil, 4 * self.crop) if max(pil.size) > 4 * self.crop else pil
        return self._cache[path]

    def sample(self, rng: random.Random) -> tuple[str, Image.Image]:
        """(kind, a crop x crop style picture)."""
        kinds = [k for k in KIND_SHARES if k != "extra" or self.extra]
        kind = rng.choices(kinds, [KIND_SHARES[k] for k in kinds])[0]
        if kind == "texture":
            source = rng.choice(self.paintings)
            if source not in self._palettes:
                self._palettes[source] = palette_of(self._load(source))
            palette = (self._palettes[source] if rng.random() < 0.6
                       else random_palette(np.random.default_rng(rng.randrange(2**31))))
            side = rng.choice([self.crop, 2 * self.crop])
            pil = generate(rng.choice(KINDS), rng.randrange(TRAIN_SEEDS_FROM, 2**31), (side, side), palette)
            return kind, self.augment(pil, rng)
        if kind == "photo":
            return kind, self.photo_augment(self._load(rng.choice(self.photos)), rng)
        pool = self.paintings if kind == "painting" else self.extra
        return kind, self.augment(self._load(rng.choice(pool)), rng)

    def validation_styles(self) -> list[tuple[str, str, Image.Image]]:
        """(kind, name, picture) of the fixed validation styles: none of them is ever trained on."""
        out = [("painting", p.name, img.load_image(p)) for p in self.val_paintings[:2]]
        out += [("texture", f"{kind} seed {1000 + i}", generate(kind, 1000 + i, (512, 512)))
                for i, kind in enumerate(KINDS[:2])]
        out += [("extra", p.name, img.load_image(p)) for p in self.val_extra[:2]]
        out += [("photo", p.name, img.load_image(p)) for p in self.val_photo_styles[:1]]
        return out


def pool_batches(pool: StylePool, batch: int, seed: int | None = 0,
                 device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Endless (B, 3, crop, crop) batches of :meth:`StylePool.sample` pictures (made on this thread: a texture is
    ~10 ms, nothing next to a CPU training step)."""
    rng = random.Random(seed)
    while True:
        yield torch.stack([to_tensor(pool.sample(rng)[1]) for _ in range(batch)]).to(device)
