"""Micro-batching: the facade's shared forward passes give each picture its own result, and the bot's
batcher groups jobs by key, closes full groups, and keeps collecting while the render slots are busy."""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bot_helpers import picture, real_presets
from PIL import Image

from bot.jobs.batcher import MicroBatcher
from stylizer.errors import Cancelled, StylizerError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest

ROOT = Path(__file__).resolve().parents[1]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _contents() -> list[Image.Image]:
    sizes = [(128, 96), (128, 96), (128, 96), (96, 128)]  # three of one shape, one of another
    return [Image.open(io.BytesIO(picture(w, h, seed=i))).convert("RGB") for i, (w, h) in enumerate(sizes)]


@pytest.mark.parametrize("method", ["cin", "adain"])
def test_batched_results_equal_single_ones(method: str) -> None:
    stylizer = Stylizer()
    if method not in stylizer.methods():
        pytest.fail(f"{method} weights are part of the repository and must load")
    if method == "cin":
        styles = [StyleRef(preset=next(p.name for p in real_presets() if p.method == "cin"))]
    else:
        styles = [StyleRef(image=ROOT / "bot" / "assets" / "sample.jpg")]
    requests = [StylizeRequest(content=c, styles=styles, size=128, device="cpu", mixed_precision=False)
                for c in _contents()]
    batched = stylizer.stylize_batch(requests)
    assert [r.timings["batch"] for r in batched] == [3, 3, 3, 1]  # type: ignore[union-attr]
    for request, result in zip(requests, batched, strict=True):
        alone = stylizer.stylize(request)
        assert not isinstance(result, StylizerError)
        assert result.size == alone.size
        # per-picture normalisation: the batch changes nothing but float rounding
        assert np.abs(_pixels(result.image) - _pixels(alone.image)).max() <= 1.0


def test_batch_keeps_going_past_a_bad_or_cancelled_picture(tmp_path: Path) -> None:
    stylizer = Stylizer()
    preset = next(p.name for p in real_presets() if p.method == "cin")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    cancel = threading.Event()
    cancel.set()
    good = _contents()
    base = StylizeRequest(content=good[0], styles=[StyleRef(preset=preset)], size=96, device="cpu")
    results = stylizer.stylize_batch([base, replace(base, content=broken),
                                      replace(base, content=good[1], cancel=cancel), replace(base, content=good[2])])
    assert isinstance(results[1], StylizerError) and not isinstance(results[1], Cancelled)
    assert isinstance(results[2], Cancelled)
    assert results[0].timings["batch"] == 2 and results[3].timings["batch"] == 2  # type: ignore[union-attr]


async def test_batcher_groups_by_key_and_closes_full_groups() -> None:
    calls: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        calls.append(items)
        await asyncio.sleep(0.05)
        return [item.upper() for item in items]

    batcher: MicroBatcher[str, str] = MicroBatcher(run, asyncio.Semaphore(1), size=3, wait=0.05)
    jobs = [("a", "x1"), ("a", "x2"), ("b", "y1"), ("a", "x3"), ("a", "x4")]
    results = await asyncio.gather(*(batcher.submit(key, item) for key, item in jobs))
    assert results == ["X1", "X2", "Y1", "X3", "X4"]
    assert sorted(map(sorted, calls)) == [["x1", "x2", "x3"], ["x4"], ["y1"]]  # "a" closed when full


async def test_batcher_collects_while_slots_are_busy() -> None:
    slots = asyncio.Semaphore(1)
    sizes: list[int] = []

    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(run, slots, size=8, wait=0.01)
    async with slots:  # a long job holds the only slot
        tasks = [asyncio.create_task(batcher.submit("k", i)) for i in range(3)]
        await asyncio.sleep(0.05)  # past the wait: the group must still be open
        tasks += [asyncio.create_task(batcher.submit("k", i)) for i in range(3, 5)]
        await asyncio.sleep(0.01)
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert sizes == [5]


async def test_batcher_passes_errors_to_every_member() -> None:
    async def run(items: list[int]) -> list[int]:
        raise RuntimeError("boom")

    batcher: MicroBatcher[int, int] = MicroBatcher(run, asyncio.Semaphore(1), size=4, wait=0.01)
    results = await asyncio.gather(batcher.submit("k", 1), batcher.submit("k", 2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
