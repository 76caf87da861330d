"""Gatys optimisation: it really minimises its loss, reports progress, cancels, mixes styles (tiny sizes)."""

from __future__ import annotations

import threading

import pytest
import torch
from PIL import Image

from stylizer import gatys
from stylizer.errors import Cancelled, MethodError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.features import gram
from stylizer.gatys import GatysMethod, GatysSettings, mixed_style_grams, scale_schedule, upsample_with_detail
from stylizer.image import pil_to_tensor, resize_long_side
from stylizer.manifest import Manifest
from stylizer.methods import MethodJob, Progress, StyleInput, get_method
from stylizer.vgg import STYLE_LAYERS, get_vgg

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    """An empty manifest: Gatys needs no trained weights."""
    return Manifest()


def _job(content: Image.Image, styles: list[tuple[Image.Image, float]], manifest: Manifest, *,
         size: int = 32, steps: int = 6, **kwargs) -> MethodJob:
    c = pil_to_tensor(resize_long_side(content, size))
    inputs = [StyleInput(w, image=pil_to_tensor(resize_long_side(s, size)), key=f"s{i}")
              for i, (s, w) in enumerate(styles)]
    return MethodJob(content=c, styles=inputs, device=CPU, manifest=manifest, steps=steps, **kwargs)


def _recorder() -> tuple[list[Progress], object]:
    seen: list[Progress] = []
    return seen, seen.append


def test_registered_and_available(manifest: Manifest) -> None:
    method = get_method("gatys")
    assert isinstance(method, GatysMethod)
    assert method.available(manifest) and method.accepts_images and method.slow


def test_settings_from_options_env_and_errors(monkeypatch, content_image, manifest) -> None:
    job = _job(content_image, [(content_image, 1.0)], manifest, steps=None)
    assert GatysSettings.from_job(job).steps == gatys.DEFAULT_STEPS
    monkeypatch.setenv("STYLIZER_GATYS_STEPS", "17")
    monkeypatch.setenv("STYLIZER_GATYS_OPTIMIZER", "adam")
    settings = GatysSettings.from_job(job)
    assert (settings.steps, settings.optimizer) == (17, "adam")
    job.steps, job.options = 5, {"optimizer": "LBFGS", "style_weight": "3", "fast_gram": "0"}
    settings = GatysSettings.from_job(job)
    assert (settings.steps, settings.optimizer, settings.style_weight) == (5, "lbfgs", 3.0)
    assert not settings.fast_gram and GatysSettings().fast_gram
    for bad in ({"optimizer": "sgd"}, {"style_weight": "lots"}, {"init": "zeros"}, {"pooling": "min"},
                {"coarse_fraction": 1.5}):
        job.options = bad
        with pytest.raises(MethodError):
            GatysSettings.from_job(job)
    job.options, job.steps = {}, 0
    with pytest.raises(MethodError):
        GatysSettings.from_job(job)


def test_scale_schedule() -> None:
    plan = scale_schedule(384, 256, 200, scales=2, coarse_fraction=0.7)
    assert plan == [((192, 128), 140), ((384, 256), 60)]
    plan = scale_schedule(1024, 768, 300, scales=3, coarse_fraction=0.6)
    assert [size for size, _ in plan] == [(256, 192), (512, 384), (1024, 768)]
    assert sum(n for _, n in plan) == 300 and plan[0][1] > plan[1][1] > 0
    # Too small to halve, or too few steps to share: one full-size level.
    assert scale_schedule(64, 48, 10, scales=3, coarse_fraction=0.7) == [((64, 48), 10)]
    assert scale_schedule(384, 256, 1, scales=2, coarse_fraction=0.7) == [((384, 256), 1)]
    assert scale_schedule(384, 256, 50, scales=1, coarse_fraction=0.7) == [((384, 256), 50)]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_decreases_and_progress_is_reported(content_image, style_image, manifest, optimizer) -> None:
    seen, callback = _recorder()
    job = _job(content_image, [(style_image, 1.0)], manifest, steps=8, progress=callback,
               options={"optimizer": optimizer, "lr": 0.05})
    out = GatysMethod().run(job)
    assert out.shape == job.content.shape and not out.requires_grad
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert [p.step for p in seen] == list(range(1, 9))
    assert all(p.stage == "gatys" and p.total == 8 and p.preview is None for p in seen)
    losses = [p.loss for p in seen]
    assert losses[-1] < 0.8 * losses[0], losses
    assert not torch.equal(out, job.content)


def test_multi_scale_continues_from_the_coarse_result(monkeypatch, content_image, style_image, manifest) -> None:
    monkeypatch.setattr(gatys, "MIN_SCALE_SIDE", 16)
    seen, callback = _recorder()
    job = _job(content_image, [(style_image, 1.0)], manifest, size=48, steps=8, progress=callback,
               options={"scales": 2, "coarse_fraction": 0.5})
    out = GatysMethod().run(job)
    assert out.shape == (1, 3, 32, 48)
    assert [p.step for p in seen] == list(range(1, 9))
    losses = [p.loss for p in seen]
    assert losses[3] < losses[0]  # coarse level
    assert losses[7] < losses[4]  # fine level, started from the upsampled coarse result


def test_upsample_with_detail_keeps_content_edges() -> None:
    content = torch.zeros(1, 3, 32, 32)
    content[..., :, 16:] = 1.0  # a hard vertical edge
    coarse = torch.nn.functional.interpolate(content, size=(16, 16), mode="area")
    up = upsample_with_detail(coarse, content)
    assert up.shape == content.shape
    # A plain upsample blurs the edge; the restored high-pass band makes it sharp again.
    blurry = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False)
    assert (up - content).abs().mean() < 0.5 * (blurry.clamp(0, 1) - content).abs().mean()


def test_preview_every_n_steps(content_image, style_image, manifest) -> None:
    seen, callback = _recorder()
    job = _job(content_image, [(style_image, 1.0)], manifest, steps=6, progress=callback,
               options={"preview": True, "preview_every": 3})
    GatysMethod().run(job)
    previews = [p for p in seen if p.preview is not None]
    assert [p.step for p in previews] == [3, 6]
    assert all(isinstance(p.preview, Image.Image) and p.preview.size == (32, 21) for p in previews)


def test_cancel_stops_the_optimisation(content_image, style_image, manifest) -> None:
    cancel = threading.Event()
    steps: list[int] = []

    def progress(p: Progress) -> None:
        steps.append(p.step)
        if p.step == 2:
            cancel.set()

    job = _job(content_image, [(style_image, 1.0)], manifest, steps=10, progress=progress, cancel=cancel)
    with pytest.raises(Cancelled):
        GatysMethod().run(job)
    assert steps == [1, 2]


def test_cancel_before_start(content_image, style_image, manifest) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        GatysMethod().run(_job(content_image, [(style_image, 1.0)], manifest, cancel=cancel))


def test_mixed_style_target_is_the_weighted_gram_mean(content_image, style_image, manifest) -> None:
    job = _job(content_image, [(style_image, 0.25), (content_image, 0.75)], manifest)
    vgg = get_vgg(CPU)
    mixed = mixed_style_grams(vgg, job, 1.0, mixed=False)
    with torch.no_grad():
        single = [vgg(s.image, STYLE_LAYERS) for s in job.styles]
    for layer in STYLE_LAYERS:
        expected = 0.25 * gram(single[0][layer]) + 0.75 * gram(single[1][layer])
        torch.testing.assert_close(mixed[layer], expected, rtol=1e-4, atol=1e-3)


def test_two_styles_and_seed_determinism(content_image, style_image, manifest) -> None:
    def run(seed: int) -> torch.Tensor:
        job = _job(content_image, [(style_image, 2.0 / 3), (style_image.rotate(90), 1.0 / 3)], manifest,
                   size=32, steps=3, seed=seed, options={"init": "noise"})
        return GatysMethod().run(job)

    a, b, c = run(1), run(1), run(2)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_strength_zero_returns_content_and_presets_are_refused(content_image, style_image, manifest) -> None:
    job = _job(content_image, [(style_image, 1.0)], manifest, strength=0.0)
    torch.testing.assert_close(GatysMethod().run(job), job.content)
    preset_job = _job(content_image, [], manifest)
    preset_job.styles = [StyleInput(1.0, preset=None, key="preset:x")]
    with pytest.raises(MethodError, match="style images"):
        GatysMethod().run(preset_job)


def test_through_the_facade(content_image, style_image, manifest) -> None:
    seen, callback = _recorder()
    request = StylizeRequest(content=content_image, styles=[StyleRef(image=style_image)], method="gatys",
                             size=64, steps=4, seed=0, device="cpu", progress=callback)
    result = Stylizer(manifest).stylize(request)
    assert result.method == "gatys" and result.image.size == (64, 43) and result.image.mode == "RGB"
    assert seen[-1].step == seen[-1].total == 4


def test_works_inside_inference_mode(content_image, style_image, manifest) -> None:
    """The bot may call methods under inference_mode; Gatys needs gradients and must switch it off."""
    job = _job(content_image, [(style_image, 1.0)], manifest, size=32, steps=2)
    with torch.inference_mode():
        out = GatysMethod().run(job)
    assert out.shape == job.content.shape
