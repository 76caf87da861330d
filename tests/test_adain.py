"""AdaIN: the layer's maths, strength and mixing, the committed decoder through the facade, presets, and
the decoder trainer (loss goes down, checkpoints resume). Small images keep every test to seconds."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stylizer import correlation
from stylizer.adain import (
    ENCODER_LAYER,
    AdaINMethod,
    Decoder,
    _pad_to_multiple,
    make_preset_file,
    mix_stats,
    style_stats,
    stylize_features,
)
from stylizer.cli import main as cli_main
from stylizer.engines import correlation as correlation_weight
from stylizer.errors import PresetError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.features import adain, channel_correlation, mean_std
from stylizer.image import pil_to_tensor
from stylizer.manifest import Manifest, Preset, load_tensors, save_tensors, sha256_file
from stylizer.methods import MethodJob, StyleInput
from stylizer.vgg import get_vgg


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    manifest = Manifest.default()
    if "adain_decoder" not in manifest.models:
        pytest.fail("weights/manifest.toml has no [models.adain_decoder]")
    return manifest


@pytest.fixture(scope="module")
def method() -> AdaINMethod:
    return AdaINMethod()


def _job(content, styles, manifest, strength=1.0) -> MethodJob:
    """A job pinned to the paper's VGG engine: these tests probe its encoder/decoder (the student engine has
    its own tests in test_student.py)."""
    return MethodJob(content=content, styles=styles, device=torch.device("cpu"), manifest=manifest,
                     strength=strength, mixed_precision=False, options={"engine": "vgg"})


def test_adain_output_has_style_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 8, 5, 7) * 3 + 1
    style_mean, style_std = torch.randn(2, 8, 1, 1), torch.rand(2, 8, 1, 1) + 0.5
    mean, std = mean_std(adain(content, style_mean, style_std))
    torch.testing.assert_close(mean, style_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, style_std, atol=1e-3, rtol=1e-3)


def test_strength_interpolates_features() -> None:
    f_c = torch.rand(1, 4, 3, 3)
    mean, std = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    torch.testing.assert_close(stylize_features(f_c, mean, std, 0.0), f_c)
    full = stylize_features(f_c, mean, std, 1.0)
    torch.testing.assert_close(stylize_features(f_c, mean, std, 0.25), 0.25 * full + 0.75 * f_c)


def test_mix_stats_one_hot_is_the_single_style() -> None:
    a, b = (torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1)), (torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1))
    mean, std = mix_stats([(1.0, *a), (0.0, *b)])
    torch.testing.assert_close(mean, a[0])
    torch.testing.assert_close(std, a[1])


def _correlated(c: int, n: int, seed: int) -> torch.Tensor:
    """(1, c, n, 1) features whose channels move together (a random mixing of independent noise)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(c, c, generator=g) @ torch.randn(c, n, generator=g)).view(1, c, n, 1) + 2


def test_correlated_adain_takes_the_style_correlation_and_moments() -> None:
    """Correlated AdaIN keeps each channel's mean at the style's (and its std at full weight); its output's channel
    correlation is nearer the style's than plain AdaIN's, the more the higher the weight; weight 0 is plain AdaIN."""
    content, style = _correlated(6, 4000, 1), _correlated(6, 4000, 2)
    s_mean, s_std = mean_std(style)
    target = channel_correlation(style)
    root = torch.from_numpy(correlation.root(target[0].numpy()))
    torch.testing.assert_close(root @ root, target[0], atol=1e-4, rtol=1e-4)
    plain = adain(content, s_mean, s_std)
    torch.testing.assert_close(adain(content, s_mean, s_std, root, 0.0), plain, atol=1e-4, rtol=1e-4)
    gaps = []
    for weight in (0.5, 1.0):
        out = adain(content, s_mean, s_std, root, weight)
        mean, std = mean_std(out)
        torch.testing.assert_close(mean, s_mean, atol=1e-4, rtol=1e-4)
        assert bool((std <= s_std * 1.001).all())
        gaps.append(float((channel_correlation(out) - target).abs().mean()))
    torch.testing.assert_close(std, s_std, atol=1e-3, rtol=1e-3)
    plain_gap = float((channel_correlation(plain) - target).abs().mean())
    assert gaps[1] < gaps[0] < plain_gap
    # several styles: weights normalised, a style without a measured correlation counts as the identity
    half = correlation.mixed_root([(1.0, root.numpy()), (1.0, None)])
    np.testing.assert_allclose(half, 0.5 * root.numpy() + 0.5 * np.eye(6), atol=1e-6)
    assert correlation.mixed_root([(1.0, None)]) is None


def test_decoder_mirrors_encoder_shape() -> None:
    decoder = Decoder()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in decoder.modules())
    out = decoder(torch.rand(1, 512, 4, 6))
    assert out.shape == (1, 3, 32, 48)


def test_alpha_zero_feeds_the_content_features(manifest, method, content_image, style_image) -> None:
    """Strength 0: the decoder's input is exactly the content's relu4_1 (feature interpolation, not pixels)."""
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    decoder = method.decoder(manifest, torch.device("cpu"))
    seen: list[torch.Tensor] = []
    handle = decoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        method.run(_job(content, [StyleInput(1.0, image=style, key="style")], manifest, strength=0.0))
    finally:
        handle.remove()
    with torch.inference_mode():
        f_c = get_vgg("cpu")(content, [ENCODER_LAYER])[ENCODER_LAYER]
    torch.testing.assert_close(seen[0].float(), f_c, atol=1e-3, rtol=1e-4)


def _calibrated(**info: object) -> Manifest:
    """The shipped manifest with the decoder's calibration (``full_alpha``, ``correlation``) set as given."""
    manifest = Manifest.default()
    entry = manifest.models["adain_decoder"]
    manifest.models["adain_decoder"] = dataclasses.replace(entry, info={**entry.info, **info})
    return manifest


def test_full_strength_is_the_decoders_calibrated_alpha(method, content_image, style_image) -> None:
    """Strength 1 feeds the decoder alpha = ``full_alpha`` of its manifest entry; strength scales it."""
    content, styles = pil_to_tensor(content_image), [StyleInput(1.0, image=pil_to_tensor(style_image), key="s")]
    half_of_full = method.run(_job(content, styles, _calibrated(full_alpha=0.5), strength=1.0))
    half_strength = method.run(_job(content, styles, _calibrated(full_alpha=1.0), strength=0.5))
    torch.testing.assert_close(half_of_full, half_strength)
    paper = method.run(_job(content, styles, _calibrated(full_alpha=1.0), strength=1.0))
    assert (paper - half_strength).abs().mean() > 0.01
    for bad in (1.5, 0, "high"):
        with pytest.raises(PresetError, match="full_alpha"):
            method.run(_job(content, styles, _calibrated(full_alpha=bad)))


def test_correlation_weight_comes_from_the_decoders_entry(method, content_image, style_image) -> None:
    """``correlation`` 0 is plain AdaIN; the shipped weight changes the picture; a bad value is a clean error."""
    content, styles = pil_to_tensor(content_image), [StyleInput(1.0, image=pil_to_tensor(style_image), key="w")]
    plain = method.run(_job(content, styles, _calibrated(correlation=0.0)))
    with torch.inference_mode():
        vgg, decoder = get_vgg("cpu"), method.decoder(Manifest.default(), torch.device("cpu"))
        f_c = vgg(_pad_to_multiple(content, 8), [ENCODER_LAYER])[ENCODER_LAYER]
        mean, std, _ = style_stats(vgg, pil_to_tensor(style_image))
        reference = decoder(stylize_features(f_c, mean, std, 1.0))[..., :content.shape[-2], :content.shape[-1]]
    torch.testing.assert_close(plain, reference.clamp(0, 1), atol=2e-3, rtol=0)
    shipped = method.run(_job(content, styles, Manifest.default()))
    assert correlation_weight(Manifest.default()) > 0
    assert (shipped - plain).abs().mean() > 2e-3
    for bad in (1.5, -0.1, "some"):
        with pytest.raises(PresetError, match="correlation"):
            method.run(_job(content, styles, _calibrated(correlation=bad)))


def test_one_hot_mixing_equals_single_style(manifest, method, content_image, style_image) -> None:
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    other = pil_to_tensor(content_image.transpose(0).convert("L").convert("RGB"))
    single = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], manifest))
    one_hot = method.run(_job(content, [StyleInput(1.0, image=style, key="a"),
                                        StyleInput(0.0, image=other, key="b")], manifest))
    half = method.run(_job(content, [StyleInput(0.5, image=style, key="a"),
                                     StyleInput(0.5, image=other, key="b")], manifest))
    torch.testing.assert_close(one_hot, single)
    assert (half - single).abs().mean() > 1e-3
    assert "a" in method._stats and "b" in method._stats  # cached by key


def test_facade_stylizes_with_committed_decoder(manifest, content_image, style_image) -> None:
    stylizer = Stylizer(manifest)
    assert "adain" in stylizer.methods()
    result = stylizer.stylize(StylizeRequest(content_image, [StyleRef(image=style_image)], method="adain",
                                             size=96, device="cpu"))
    assert result.method == "adain" and result.image.size == (96, 64)
    out = pil_to_tensor(result.image)
    assert (out - pil_to_tensor(content_image)).abs().mean() > 0.02  # it changed the picture
    assert out.std() > 0.02  # and did not collapse to a flat colour


def test_odd_sizes_keep_their_shape(manifest, method, style_image) -> None:
    content = torch.rand(1, 3, 37, 53)
    out = method.run(_job(content, [StyleInput(1.0, image=pil_to_tensor(style_image), key="s")], manifest))
    assert out.shape == (1, 3, 37, 53) and out.min() >= 0 and out.max() <= 1


def test_preset_file_matches_the_style_image(tmp_path: Path, manifest, method, content_image,
                                             style_image) -> None:
    style_path = tmp_path / "style.png"
    style_image.save(style_path)
    sha = make_preset_file(style_path, tmp_path / "p.safetensors", size=80)
    preset = Preset(name="p", method="adain", file=tmp_path / "p.safetensors", sha256=sha)
    content = pil_to_tensor(content_image)
    from_preset = method.run(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], manifest))
    from_image = method.run(_job(content, [StyleInput(1.0, image=pil_to_tensor(style_image), key="")], manifest))
    assert (from_preset - from_image).abs().max() < 0.02  # fp16 file, same statistics
    # a preset made before correlations were measured (mean and std only) still runs, as plain AdaIN
    tensors = load_tensors(tmp_path / "p.safetensors")
    assert tensors["correlation"].shape == (512, 512)
    old_sha = save_tensors({k: tensors[k] for k in ("mean", "std")}, tmp_path / "old.safetensors", {"method": "adain"})
    old = Preset(name="old", method="adain", file=tmp_path / "old.safetensors", sha256=old_sha)
    from_old = method.run(_job(content, [StyleInput(1.0, preset=old, key="preset:old")], manifest))
    plain = method.run(_job(content, [StyleInput(1.0, preset=preset, key="")], _calibrated(correlation=0.0)))
    torch.testing.assert_close(from_old, plain)


def _train(folder: Path, out: Path, steps: int, *extra: str) -> int:
    return cli_main(["train-decoder", "--content-dir", str(folder), "--style-dir", str(folder), "-o", str(out),
                     "--steps", str(steps), "--size", "40", "--crop", "32", "--batch", "2", "--workers", "0",
                     "--lr", "1e-3", "--device", "cpu", "--seed", "0", *extra])


def _losses(log_file: Path) -> list[dict]:
    """The loss reports of the training log (JSON lines of the shared train.loop.Loop)."""
    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [{"step": r["step"], **r["losses"]} for r in rows if "losses" in r]


def test_train_decoder_loss_decreases(tmp_path: Path, image_folder: Path) -> None:
    out, log_file = tmp_path / "dec.safetensors", tmp_path / "loss.jsonl"
    assert _train(image_folder, out, 12, "--log-every", "3", "--log-file", str(log_file),
                  "--checkpoint-every", "0") == 0
    rows = _losses(log_file)  # step 1, then each the mean of 3 steps, fixed seed
    assert [e["step"] for e in rows] == [1, 3, 6, 9, 12]
    assert rows[-1]["loss"] < 0.5 * rows[1]["loss"]
    decoder = Decoder()
    from stylizer.manifest import load_tensors

    decoder.load_state_dict(load_tensors(out))  # the saved file is a usable decoder


def test_train_decoder_resumes_from_checkpoint(tmp_path: Path, image_folder: Path) -> None:
    out, ckpt, log_file = tmp_path / "dec.safetensors", tmp_path / "dec.ckpt", tmp_path / "loss.jsonl"
    assert _train(image_folder, out, 2, "--checkpoint", str(ckpt), "--checkpoint-every", "2") == 0
    first = sha256_file(out)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 2 and "optimizer" in state
    assert _train(image_folder, out, 3, "--checkpoint", str(ckpt), "--resume", str(ckpt), "--log-every", "1",
                  "--log-file", str(log_file)) == 0
    assert [e["step"] for e in _losses(log_file)] == [3]  # continued, did not restart at 1
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    assert sha256_file(out) != first


def test_train_decoder_missing_checkpoint_is_a_clean_error(tmp_path: Path, image_folder: Path, capsys) -> None:
    assert _train(image_folder, tmp_path / "d.safetensors", 2, "--resume", str(tmp_path / "nope.ckpt")) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_train_decoder_fine_tunes_on_the_style_pool(tmp_path: Path, image_folder: Path, capsys) -> None:
    """--from starts from a trained decoder (lr 0 keeps it exactly), --style-pool draws textures and photos too,
    --style-layers reaches relu5_1; the file records where it came from."""
    from stylizer.manifest import load_tensors, read_metadata

    start = tmp_path / "start.safetensors"
    assert _train(image_folder, start, 2, "--checkpoint-every", "0") == 0
    out, log_file = tmp_path / "tuned.safetensors", tmp_path / "loss.jsonl"
    assert _train(image_folder, out, 2, "--from", str(start), "--style-pool", "--lr", "0", "--lr-decay", "0",
                  "--style-layers", "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", "--checkpoint-every", "0",
                  "--log-every", "1", "--log-file", str(log_file)) == 0
    before, after = load_tensors(start), load_tensors(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = read_metadata(out, "decoder")
    assert meta["from"] == "start.safetensors" and meta["style_layers"].endswith("relu5_1")
    assert "textures" in meta["data"]
    assert all(math.isfinite(e["style"]) and e["style"] > 0 for e in _losses(log_file))
    assert _train(image_folder, out, 2, "--style-layers", "relu1_1,relu2_1") == 2  # relu4_1 is the content's
    assert "--style-layers" in capsys.readouterr().err


def test_decoder_trains_on_correlated_adain_inputs(tmp_path: Path, image_folder: Path, capsys) -> None:
    """--correlation W: the decoder's training input is correlated AdaIN by each sample's own style root (what the
    manifest's ``correlation`` runs it with), not plain AdaIN; the file records the weight."""
    from stylizer.correlation import root
    from stylizer.features import adain, channel_correlation, mean_std
    from stylizer.losses import adain_targets
    from stylizer.manifest import read_metadata
    from stylizer.vgg import get_vgg

    vgg = get_vgg("cpu")
    content, style = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    style[1] = style[1].flip(-1) ** 2  # two different styles
    plain, _ = adain_targets(vgg, content, style)
    mixed, _ = adain_targets(vgg, content, style, correlation=0.5)
    f_c, f_s = vgg(content, ["relu4_1"])["relu4_1"], vgg(style, ["relu4_1"])["relu4_1"]
    mean, std = mean_std(f_s)
    for i, corr in enumerate(channel_correlation(f_s)):
        own = adain(f_c[i:i + 1], mean[i:i + 1], std[i:i + 1], torch.from_numpy(root(corr.numpy())), 0.5)
        torch.testing.assert_close(mixed[i:i + 1], own)
    assert (mixed - plain).abs().mean() > 0.01 * plain.abs().mean()
    torch.testing.assert_close(adain_targets(vgg, content, style, correlation=0.0)[0], plain)

    out, log_file = tmp_path / "dec.safetensors", tmp_path / "loss.jsonl"
    assert _train(image_folder, out, 4, "--correlation", "0.5", "--checkpoint-every", "0", "--log-every", "1",
                  "--log-file", str(log_file)) == 0
    assert read_metadata(out, "decoder")["correlation"] == "0.5"
    assert all(math.isfinite(e["loss"]) for e in _losses(log_file))
    assert _train(image_folder, out, 2, "--correlation", "1.5") == 2
    assert "--correlation" in capsys.readouterr().err
