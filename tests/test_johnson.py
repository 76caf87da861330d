"""Johnson nets: architecture, the perceptual loss going down when training, and the train-preset path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from stylizer.image import pil_to_tensor
from stylizer.johnson import load_net
from stylizer.losses import PerceptualLoss
from stylizer.manifest import Manifest, sha256_file
from stylizer.train.preset import TrainConfig, _optimise, train_preset
from stylizer.transformer import JOHNSON_ARCH, TransformerNet, UpsampleConv
from stylizer.vgg import get_vgg


def test_architecture_follows_the_known_fixes() -> None:
    net = TransformerNet(JOHNSON_ARCH)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, UpsampleConv) for m in net.modules()) == 2
    assert all(isinstance(n, torch.nn.InstanceNorm2d) for n in net.norms)
    assert all(m.padding == (0, 0) for m in net.modules() if isinstance(m, torch.nn.Conv2d))  # reflection pads


@pytest.mark.parametrize("size", [(33, 47), (64, 48)])
def test_forward_shape_and_determinism(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    net = TransformerNet(JOHNSON_ARCH).eval()
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        y1, y2 = net(x), net(x)
    assert y1.shape == x.shape and torch.equal(y1, y2)


def test_a_few_steps_lower_the_loss(content_image, style_image) -> None:
    """On one fixed batch, 15 Adam steps must reduce the perceptual loss clearly."""
    torch.manual_seed(0)
    vgg = get_vgg("cpu")
    content = pil_to_tensor(content_image.resize((64, 64)))
    loss_fn = PerceptualLoss(vgg, [pil_to_tensor(style_image)])
    net = TransformerNet(JOHNSON_ARCH).train()
    with torch.no_grad():
        before, _ = loss_fn(net(content), content)
    stats = _optimise(list(net.parameters()), lambda x: (net(x), None), loss_fn, itertools.repeat(content),
                      steps=15, lr=1e-2, cfg=TrainConfig(), device=torch.device("cpu"), save=lambda step: None,
                      progress=None, cancel=None, tag="test")
    with torch.no_grad():
        after, _ = loss_fn(net(content), content)
    assert stats["steps"] == 15
    assert float(after) < 0.8 * float(before)


def test_train_preset_johnson_tiny(image_folder: Path, style_image, tmp_path: Path) -> None:
    preset = train_preset("tiny_j", style_image, method="johnson", content_dir=image_folder, out_dir=tmp_path,
                          steps=4, size=64, device="cpu", manifest=Manifest.default())
    assert preset.file == tmp_path / "johnson_tiny_j.safetensors"
    assert preset.sha256 == sha256_file(preset.file)
    assert preset.thumbnail is not None and preset.thumbnail.stat().st_size > 0
    net = load_net(preset)
    assert net.arch == JOHNSON_ARCH and not net.conditional
