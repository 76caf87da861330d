"""CIN net: shapes, determinism, mixing rows, and adding a style without touching anything else."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stylizer.cin import BASE_SHA_KEY, cached_base, load_base, load_rows, mix_rows
from stylizer.errors import Cancelled
from stylizer.image import pil_to_tensor
from stylizer.manifest import Manifest, ModelEntry, Preset, load_tensors, save_tensors, sha256_file
from stylizer.methods import Progress
from stylizer.train.preset import TrainConfig, fit_cin_style, train_cin_base, train_preset
from stylizer.transformer import CIN_ARCH, TransformerNet, style_from_rows

TINY = TrainConfig(steps=3, size=64, batch=1, save_every=2)


def _identity_style(net: TransformerNet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.ones(1, c), torch.zeros(1, c)) for c in net.norm_widths]


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (65, 31)])
def test_forward_keeps_shape_and_range(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = TransformerNet(CIN_ARCH, conditional=True).eval()
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        y = net(x, _identity_style(net))
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_forward_is_deterministic_and_needs_a_style() -> None:
    torch.manual_seed(0)
    net = TransformerNet(CIN_ARCH, conditional=True).eval()
    x = torch.rand(1, 3, 40, 48)
    with torch.inference_mode():
        assert torch.equal(net(x, _identity_style(net)), net(x, _identity_style(net)))
        with pytest.raises(ValueError):
            net(x)


def test_one_hot_mix_equals_the_single_preset(content_image) -> None:
    manifest = Manifest.default()
    base = cached_base(manifest.model("cin_base"), torch.device("cpu"), torch.float32)
    a, b = (load_rows(manifest.preset(n), base) for n in ("candy", "starry_night"))
    n = len(base.net.norms)
    cpu = torch.device("cpu")
    x = pil_to_tensor(content_image)
    with torch.inference_mode():
        single = base.net(x, mix_rows([a], [1.0], n, cpu, torch.float32))
        one_hot = base.net(x, mix_rows([a, b], [1.0, 0.0], n, cpu, torch.float32))
        other = base.net(x, mix_rows([b], [1.0], n, cpu, torch.float32))
        half = base.net(x, mix_rows([a, b], [0.5, 0.5], n, cpu, torch.float32))
    assert torch.allclose(single, one_hot, atol=1e-6)
    assert not torch.allclose(single, other, atol=1e-2)
    assert not torch.allclose(half, single, atol=1e-3) and not torch.allclose(half, other, atol=1e-3)


def test_style_rows_mix_linearly() -> None:
    rows = {"gamma.0": torch.tensor([[1.0, 2.0], [3.0, 6.0]]), "beta.0": torch.tensor([[0.0, 0.0], [1.0, -1.0]])}
    ((gamma, beta),) = style_from_rows(rows, 1, torch.tensor([0.25, 0.75]))
    assert torch.allclose(gamma, torch.tensor([[2.5, 5.0]]))
    assert torch.allclose(beta, torch.tensor([[0.75, -0.75]]))


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, request) -> tuple[Path, dict[str, Path]]:
    """A CIN base net trained for 3 steps at 64 px on two synthetic styles."""
    from conftest import _pattern

    root = tmp_path_factory.mktemp("cin")
    content = root / "content"
    content.mkdir()
    for i in range(6):
        _pattern((72 + 8 * i, 64), seed=10 + i).save(content / f"img_{i}.jpg")
    styles = []
    for i, name in enumerate(("alpha", "beta")):
        path = root / f"{name}.png"
        _pattern((80, 80), seed=30 + i).save(path)
        styles.append((name, path))
    base_file, rows, _ = train_cin_base(styles, root / "w", content, TINY, "cpu")
    return base_file, rows


def test_train_base_writes_base_and_rows(tiny_base) -> None:
    base_file, rows = tiny_base
    base = load_base(ModelEntry("cin_base", base_file, sha256_file(base_file)))
    assert set(rows) == {"alpha", "beta"}
    assert "init.gamma.0" in load_tensors(base_file)
    for path in rows.values():
        tensors = load_tensors(path)
        assert len(tensors) == 2 * len(base.net.norms)


def test_adding_a_style_changes_only_its_new_row(tiny_base, style_image, tmp_path: Path) -> None:
    base_file, rows = tiny_base
    content = base_file.parents[1] / "content"
    before = {p: sha256_file(p) for p in [base_file, *rows.values()]}
    entry = ModelEntry("cin_base", base_file, before[base_file])
    out = tmp_path / "cin_gamma.safetensors"
    fit_cin_style(style_image, entry, out, content, TINY, "cpu")
    assert {p: sha256_file(p) for p in before} == before  # base net and other presets untouched
    new = load_tensors(out)
    init = {k.removeprefix("init."): v for k, v in load_tensors(base_file).items() if k.startswith("init.")}
    assert set(new) == set(init)
    assert any(not torch.allclose(new[k], init[k], atol=1e-4) for k in new)  # the row did move


def test_refit_starts_from_the_presets_own_row(tiny_base, style_image, tmp_path: Path) -> None:
    """--init-from: a re-fit continues from the preset's row, not from the base's mean row."""
    base_file, rows = tiny_base
    content = base_file.parents[1] / "content"
    base_sha = sha256_file(base_file)
    entry = ModelEntry("cin_base", base_file, base_sha)
    moved = {k: v.float() + 0.5 for k, v in load_tensors(rows["alpha"]).items()}  # far from the mean row
    file = tmp_path / "cin_alpha.safetensors"
    sha = save_tensors(moved, file, {BASE_SHA_KEY: base_sha})
    alpha = Preset(name="alpha", method="cin", file=file, sha256=sha, params={"base": "cin_base"})
    out = tmp_path / "cin_alpha_refit.safetensors"
    fit_cin_style(style_image, entry, out, content, replace(TINY, steps=1, lr=1e-7), "cpu", init=alpha)
    new = load_tensors(out)
    assert all(torch.allclose(new[k].float(), moved[k], atol=1e-2) for k in new)


def test_train_preset_api_progress_thumbnail_and_cancel(image_folder: Path, style_image, tmp_path: Path) -> None:
    seen: list[Progress] = []
    preset = train_preset("tiny_cin", style_image, method="cin", content_dir=image_folder, out_dir=tmp_path,
                          steps=4, size=64, device="cpu", progress=seen.append, manifest=Manifest.default())
    assert preset.method == "cin" and preset.params["base"] == "cin_base"
    assert preset.sha256 == sha256_file(preset.file)
    assert preset.thumbnail is not None and preset.thumbnail.is_file()
    assert [p.step for p in seen] == [1, 2, 3, 4] and all(p.stage == "train" and p.total == 4 for p in seen)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        train_preset("never", style_image, method="cin", content_dir=image_folder, out_dir=tmp_path, steps=4,
                     size=64, device="cpu", cancel=cancel, manifest=Manifest.default())


def test_johnson_fine_tune_starts_as_the_cin_preset(tiny_base, style_image, tmp_path: Path) -> None:
    """``train-preset --method johnson --init-from CIN_PRESET``: the net starts as the base with the preset's row
    baked into ordinary norms (the same picture), then every weight trains; it loads as a Johnson preset."""
    from stylizer.johnson import load_net
    from stylizer.train.preset import johnson_init

    base_file, rows = tiny_base
    content = base_file.parents[1] / "content"
    manifest = Manifest.default()
    manifest.models["tiny_base"] = ModelEntry("tiny_base", base_file, sha256_file(base_file))
    alpha = Preset(name="alpha", method="cin", file=rows["alpha"], sha256=sha256_file(rows["alpha"]),
                   params={"base": "tiny_base"})
    manifest = manifest.with_presets(alpha)
    net = johnson_init(alpha, manifest).eval()
    base = load_base(manifest.model("tiny_base"))
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        cin_out = base.net(x, style_from_rows({k: v[None] for k, v in load_rows(alpha, base).items()},
                                              len(base.net.norms)))
        torch.testing.assert_close(net(x), cin_out)
    preset = train_preset("alpha_j", style_image, method="johnson", content_dir=content, out_dir=tmp_path,
                          steps=3, size=32, device="cpu", manifest=manifest, init_from="alpha")
    tuned = load_net(preset)
    assert tuned.arch == base.net.arch and not tuned.conditional  # CIN-sized, a plain Johnson net
    with torch.no_grad():
        assert (tuned(x) - cin_out).abs().max() > 1e-4  # its weights moved
        assert (tuned(x) - cin_out).abs().mean() < 0.1  # from where the CIN preset stood
