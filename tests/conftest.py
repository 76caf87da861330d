"""Shared fixtures: small synthetic images (no data from ../shared needed) and the shared data folder if present."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(os.environ.get("STYLEBOT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
# AdaIN's ONNX exports (stylizer.onnx_engine) go to a folder of this run, not the user's cache; the CLI
# processes the tests start inherit it.
os.environ["STYLIZER_CACHE_DIR"] = tempfile.mkdtemp(prefix="stylizer-test-cache-")


def _pattern(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth, structured picture (gradients + shapes + noise): VGG reacts to it like to a photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [
            0.5 + 0.5 * np.sin(x / (7 + seed) + rng.uniform(0, 6)),
            0.5 + 0.5 * np.cos(y / (11 + seed) + rng.uniform(0, 6)),
            0.5 + 0.5 * np.sin((x + y) / (5 + 2 * seed)),
        ],
        axis=-1,
    )
    cx, cy, r = w * 0.4, h * 0.5, min(w, h) * 0.25
    img[(x - cx) ** 2 + (y - cy) ** 2 < r**2] *= 0.3
    img += rng.normal(0, 0.04, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


@pytest.fixture
def content_image() -> Image.Image:
    return _pattern((96, 64), seed=1)


@pytest.fixture
def style_image() -> Image.Image:
    return _pattern((80, 80), seed=5)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 6 small JPEGs, enough for a few training steps."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        _pattern((72 + 8 * i, 64), seed=10 + i).save(folder / f"img_{i}.jpg", quality=90)
    return folder


@pytest.fixture
def shared_data() -> Path:
    """../shared/data when present (developer machines and CI have it); skips otherwise."""
    data = SHARED / "data"
    if not (data / "content").is_dir():
        pytest.skip("../shared/data not present")
    return data


@pytest.fixture(scope="session")
def postgres_base() -> Iterator[str]:
    """One throwaway PostgreSQL server for the whole run (tests/postgres.py)."""
    from postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_base: str, request: pytest.FixtureRequest) -> str:
    """A fresh database per test on the session's server."""
    from postgres import create_database

    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    return create_database(postgres_base, name)


@pytest.fixture
async def tg():
    """The fake Telegram Bot API server (tests/fake_telegram.py) on a free port of 127.0.0.1."""
    from fake_telegram import FakeTelegram

    async with FakeTelegram() as server:
        yield server
