"""Fast AdaIN engine: the style code, the predictor, engine choice, mixing/strength/presets through the
method and the facade, and the trainer (``train-decoder --net fast``). A net built here from the committed
CIN base stands in for the trained one, so these tests check the plumbing whatever weights are shipped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from stylizer.adain import AdaINMethod, make_preset_file
from stylizer.cin import read_metadata
from stylizer.cli import main as cli_main
from stylizer.errors import MethodError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.fast_adain import CODE_DIM, CODE_LAYERS, FastAdaIN, code_from_features, code_stats, save_fast
from stylizer.features import mean_std
from stylizer.image import pil_to_tensor
from stylizer.manifest import Manifest, ModelEntry, Preset, load_tensors
from stylizer.methods import MethodJob, StyleInput
from stylizer.train.fast_adain import holdout_split, init_from_cin
from stylizer.transformer import style_from_rows

CIN_BASE = Path(__file__).resolve().parents[1] / "weights" / "cin_base.safetensors"


def _fresh_net(seed: int = 0) -> FastAdaIN:
    """The CIN base's convolutions with a random (but small) predictor: codes change the output."""
    torch.manual_seed(seed)
    model = FastAdaIN()
    init_from_cin(model, CIN_BASE)
    with torch.no_grad():
        model.predictor.mlp[2].weight.normal_(std=0.02)
    return model.eval()


@pytest.fixture(scope="module")
def fast_manifest(tmp_path_factory) -> Manifest:
    """The shipped manifest plus a fast net written to a temp file (as ``[models.adain_fast]``)."""
    path = tmp_path_factory.mktemp("fast") / "adain_fast.safetensors"
    sha = save_fast(_fresh_net(), path)
    manifest = Manifest.default().with_presets()
    manifest.models["adain_fast"] = ModelEntry("adain_fast", path, sha)
    return manifest


def _without_fast(manifest: Manifest) -> Manifest:
    copy = manifest.with_presets()
    copy.models.pop("adain_fast", None)
    return copy


def _job(content, styles, manifest, strength=1.0, **options) -> MethodJob:
    return MethodJob(content=content, styles=styles, device=torch.device("cpu"), manifest=manifest,
                     strength=strength, mixed_precision=False, options=options)


def test_code_holds_every_layers_mean_and_std() -> None:
    torch.manual_seed(0)
    widths = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
    feats = {k: torch.rand(2, c, 5, 4) * 30 for k, c in widths.items()}
    code = code_from_features(feats)
    assert code.shape == (2, CODE_DIM)
    for layer in CODE_LAYERS:
        mean, std = code_stats(code, layer)
        want_mean, want_std = mean_std(feats[layer])
        torch.testing.assert_close(mean, want_mean)
        torch.testing.assert_close(std, want_std)


def test_untrained_predictor_reproduces_the_cin_average_style(content_image) -> None:
    """With a zero MLP the net is exactly the CIN base with its average-style rows: a safe starting point."""
    model = FastAdaIN()
    init_from_cin(model, CIN_BASE)
    with torch.no_grad():
        model.predictor.mlp[2].weight.zero_()
    tensors = load_tensors(CIN_BASE)
    rows = {k.removeprefix("init."): v.unsqueeze(0) for k, v in tensors.items() if k.startswith("init.")}
    x = pil_to_tensor(content_image)
    with torch.no_grad():
        got = model(x, torch.rand(1, CODE_DIM))
        want = model.net(x, style_from_rows(rows, len(model.net.norms)))
    torch.testing.assert_close(got, want)


def test_engine_choice(fast_manifest, content_image, style_image, monkeypatch) -> None:
    method = AdaINMethod()
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    styles = [StyleInput(1.0, image=style, key="s")]
    assert method.engine(_job(content, styles, fast_manifest)) == "fast"
    assert method.engine(_job(content, styles, fast_manifest, engine="VGG")) == "vgg"
    assert method.engine(_job(content, styles, _without_fast(fast_manifest))) == "vgg"
    monkeypatch.setenv("STYLIZER_ADAIN_ENGINE", "vgg")
    assert method.engine(_job(content, styles, fast_manifest)) == "vgg"
    monkeypatch.delenv("STYLIZER_ADAIN_ENGINE")
    with pytest.raises(MethodError, match="unknown engine"):
        method.engine(_job(content, styles, fast_manifest, engine="turbo"))
    with pytest.raises(MethodError, match="no weights"):
        method.engine(_job(content, styles, _without_fast(fast_manifest), engine="fast"))
    fast = method.run(_job(content, styles, fast_manifest))
    slow = method.run(_job(content, styles, fast_manifest, engine="vgg"))
    assert fast.shape == slow.shape == content.shape
    assert (fast - slow).abs().mean() > 0.01  # two different networks really ran
    assert "code:s" in method._stats and "s" in method._stats


def test_fast_mixing_strength_and_style_dependence(fast_manifest, content_image, style_image) -> None:
    method = AdaINMethod()
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    other = pil_to_tensor(content_image.transpose(0).convert("L").convert("RGB"))
    single = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], fast_manifest))
    one_hot = method.run(_job(content, [StyleInput(1.0, image=style, key="a"),
                                        StyleInput(0.0, image=other, key="b")], fast_manifest))
    other_only = method.run(_job(content, [StyleInput(1.0, image=other, key="b")], fast_manifest))
    torch.testing.assert_close(one_hot, single)
    assert (other_only - single).abs().mean() > 1e-3  # the style picture matters
    zero = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], fast_manifest, strength=0.0))
    torch.testing.assert_close(zero, content)
    half = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], fast_manifest, strength=0.5))
    torch.testing.assert_close(half, 0.5 * single + 0.5 * content, atol=1e-5, rtol=1e-5)


def test_presets_carry_a_style_code(tmp_path: Path, fast_manifest, content_image, style_image) -> None:
    method = AdaINMethod()
    style_path = tmp_path / "style.png"
    style_image.save(style_path)
    sha = make_preset_file(style_path, tmp_path / "p.safetensors", size=80)
    assert "code" in load_tensors(tmp_path / "p.safetensors")
    preset = Preset(name="p", method="adain", file=tmp_path / "p.safetensors", sha256=sha)
    content = pil_to_tensor(content_image)
    from_preset = method.run(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], fast_manifest))
    from_image = method.run(_job(content, [StyleInput(1.0, image=pil_to_tensor(style_image), key="")],
                                 fast_manifest))
    assert (from_preset - from_image).abs().max() < 0.02  # fp16 code, same statistics
    # A preset file from before the fast engine (mean/std only) still works: it runs on the vgg engine.
    old = load_tensors(tmp_path / "p.safetensors")
    from stylizer.manifest import save_tensors

    old_sha = save_tensors({"mean": old["mean"], "std": old["std"]}, tmp_path / "old.safetensors")
    old_preset = Preset(name="old", method="adain", file=tmp_path / "old.safetensors", sha256=old_sha)
    job = _job(content, [StyleInput(1.0, preset=old_preset, key="preset:old")], fast_manifest)
    assert method.engine(job) == "vgg"
    assert method.run(job).shape == content.shape


def test_facade_and_cli_take_the_engine_option(tmp_path: Path, fast_manifest, content_image, style_image,
                                               monkeypatch) -> None:
    stylizer = Stylizer(fast_manifest)
    results = {
        engine: stylizer.stylize(StylizeRequest(content_image, [StyleRef(image=style_image)], method="adain",
                                                size=64, device="cpu", options={"engine": engine}))
        for engine in ("fast", "vgg")
    }
    assert all(r.image.size == (64, 43) for r in results.values())
    a, b = (pil_to_tensor(r.image) for r in results.values())
    assert (a - b).abs().mean() > 0.01
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    content_image.save(content)
    style_image.save(style)
    rc = cli_main(["stylize", str(content), "--style", str(style), "--method", "adain", "--size", "48",
                   "-o", str(tmp_path / "o.png"), "--opt", "engine=nope"])
    assert rc == 2  # unknown engine: one-line error, exit 2
    assert cli_main(["stylize", str(content), "--style", str(style), "--size", "48", "-o", str(tmp_path / "x"),
                     "--opt", "novalue"]) == 2


def test_holdout_split_is_disjoint(image_folder: Path) -> None:
    train, held = holdout_split(image_folder, 3)
    assert len(held) == 2 and not set(train) & set(held) and len(train) + len(held) == 6
    assert holdout_split(image_folder, 0)[1] == []


def _train_fast(folder: Path, out: Path, steps: int, *extra: str) -> int:
    return cli_main(["train-decoder", "--net", "fast", "--content-dir", str(folder), "--style-dir", str(folder),
                     "-o", str(out), "--steps", str(steps), "--size", "48", "--crop", "32", "--batch", "4",
                     "--workers", "0", "--lr", "2e-3", "--device", "cpu", "--seed", "0", "--fp32",
                     "--init-from", str(CIN_BASE), *extra])


def test_train_fast_loss_decreases_and_resumes(tmp_path: Path, image_folder: Path) -> None:
    out, ckpt, log_file = tmp_path / "fast.safetensors", tmp_path / "fast.ckpt", tmp_path / "loss.jsonl"
    assert _train_fast(image_folder, out, 16, "--log-every", "4", "--log-file", str(log_file),
                       "--checkpoint", str(ckpt), "--checkpoint-every", "16") == 0
    losses = [json.loads(line)["loss"] for line in log_file.read_text().splitlines()]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    model = FastAdaIN()
    model.load_state_dict(load_tensors(out))  # the written file is a usable net
    assert _train_fast(image_folder, out, 18, "--resume", str(ckpt), "--log-every", "1",
                       "--log-file", str(log_file), "--checkpoint", str(ckpt)) == 0
    steps = [json.loads(line)["step"] for line in log_file.read_text().splitlines()]
    assert steps[-2:] == [17, 18]  # continued after step 16
    assert torch.load(ckpt, weights_only=True)["step"] == 18


def test_distillation_pulls_the_net_towards_the_teacher(tmp_path: Path, image_folder: Path, caplog) -> None:
    """``--teacher-weight``: the committed VGG engine stylizes each batch and the net learns to match it."""
    out = tmp_path / "fast.safetensors"
    with caplog.at_level("INFO", logger="stylizer.train.fast_adain"):
        assert _train_fast(image_folder, out, 12, "--log-every", "4", "--teacher-weight", "20",
                           "--style-weight", "0") == 0
    distill = [float(m.group(1)) for r in caplog.records
               if (m := re.match(r"step \d+  distillation ([\d.]+)$", r.getMessage()))]
    assert len(distill) == 3 and distill[-1] < 0.9 * distill[0]
    FastAdaIN().load_state_dict(load_tensors(out))  # a usable net
    assert read_metadata(out, "fast net")["teacher_weight"] == "20.0"
