"""Fast AdaIN: AdaIN's style statistics drive a light feed-forward net instead of VGG-19 + decoder.

The paper's network spends all its time in VGG-19 (to relu4_1) and the mirror decoder: ~128 GMAC per
512 px photo, ~0.7 s on two CPU cores. The style side of AdaIN is cheap and stays: a style is
described by AdaIN's channel statistics, the mean and std of VGG-19 relu1_1..relu5_1 (the *style
code*, 2 x 1472 numbers, computed once per style picture and cached). The content side never touches
VGG: a small MLP (the style-prediction idea of Ghiasi et al. 2017, fed with VGG statistics instead of
an Inception embedding) maps the code to the ``(gamma, beta)`` of every conditional instance norm of
the CIN transformer net (:mod:`stylizer.transformer`), so each norm layer performs an adaptive
instance normalisation whose target statistics are predicted from the style (~5 GMAC per 512 px photo).

It is trained with the AdaIN losses (``python -m stylizer train-decoder --net fast``): content loss
against the AdaIN target at relu4_1, mean/std style loss at relu1_1..relu5_1, with paintings *and*
photos as styles so the mapping covers more of the space of statistics than 37 paintings span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .errors import PresetError
from .features import mean_std
from .manifest import ModelEntry, load_tensors, save_tensors
from .transformer import CIN_ARCH, Arch, StyleParams, TransformerNet
from .vgg import LAYER_SCALE, STYLE_LAYERS, VGG19

MODEL_NAME = "adain_fast"
#: VGG layers whose channel mean/std form the style code (all of the brief's style_gap layers).
CODE_LAYERS = STYLE_LAYERS
#: Channels of each code layer in VGG-19.
CODE_WIDTHS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
CODE_DIM = 2 * sum(CODE_WIDTHS[k] for k in CODE_LAYERS)


def code_from_features(feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(N, CODE_DIM) style code from VGG features: per layer mean then std, divided by LAYER_SCALE."""
    parts = []
    for layer in CODE_LAYERS:
        mean, std = mean_std(feats[layer])
        parts += [mean.flatten(1) / LAYER_SCALE[layer], std.flatten(1) / LAYER_SCALE[layer]]
    return torch.cat(parts, dim=1)


def style_code(vgg: VGG19, image: torch.Tensor) -> torch.Tensor:
    """Style code (N, CODE_DIM) of pictures (N, 3, H, W) in [0, 1], float32."""
    return code_from_features(vgg(image, CODE_LAYERS))


def code_stats(code: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Unscaled (mean, std) of one layer, each (N, C, 1, 1), back out of a style code (the loss targets)."""
    offset = 0
    for name in CODE_LAYERS:
        c = CODE_WIDTHS[name]
        if name == layer:
            mean = code[:, offset:offset + c] * LAYER_SCALE[name]
            std = code[:, offset + c:offset + 2 * c] * LAYER_SCALE[name]
            return mean[..., None, None], std[..., None, None]
        offset += 2 * c
    raise KeyError(layer)


class StylePredictor(nn.Module):
    """Style code -> one ``(gamma, beta)`` pair per norm layer of the transformer.

    The output is ``base + MLP(code)``: ``base`` starts at the CIN base net's average style, so a fresh
    predictor already produces a plausible picture and training only learns the deviations.
    """

    def __init__(self, widths: Sequence[int], hidden: int = 256, code_dim: int = CODE_DIM) -> None:
        super().__init__()
        self.widths = list(widths)
        total = 2 * sum(self.widths)
        self.mlp = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, total))
        nn.init.normal_(self.mlp[2].weight, std=1e-3)
        nn.init.zeros_(self.mlp[2].bias)
        base = torch.cat([torch.cat([torch.ones(c), torch.zeros(c)]) for c in self.widths])
        self.base = nn.Parameter(base)

    def set_base(self, rows: Mapping[str, torch.Tensor]) -> None:
        """Start from given per-layer rows (``gamma.{i}``/``beta.{i}``, e.g. a CIN base's ``init`` rows)."""
        with torch.no_grad():
            parts = [torch.cat([rows[f"gamma.{i}"].flatten(), rows[f"beta.{i}"].flatten()])
                     for i in range(len(self.widths))]
            self.base.copy_(torch.cat(parts).to(self.base))

    def forward(self, code: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        flat = self.base + self.mlp(code.to(self.base.dtype))
        out, offset = [], 0
        for c in self.widths:
            out.append((flat[:, offset:offset + c], flat[:, offset + c:offset + 2 * c]))
            offset += 2 * c
        return out


class FastAdaIN(nn.Module):
    """``forward(content, code)``: (N, 3, H, W) in [0, 1] and (N or 1, CODE_DIM) codes -> stylized image."""

    def __init__(self, arch: Arch = CIN_ARCH, hidden: int = 256) -> None:
        super().__init__()
        self.arch, self.hidden = arch, hidden
        self.net = TransformerNet(arch, conditional=True)
        self.predictor = StylePredictor(self.net.norm_widths, hidden)

    def style_params(self, code: torch.Tensor, dtype: torch.dtype | None = None) -> StyleParams:
        params = self.predictor(code)
        return params if dtype is None else [(g.to(dtype), b.to(dtype)) for g, b in params]

    def forward(self, content: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.net(content, self.style_params(code))

    def metadata(self) -> dict[str, str]:
        return {"arch": self.arch.to_json(), "hidden": str(self.hidden), "code_layers": json.dumps(CODE_LAYERS)}


def save_fast(model: FastAdaIN, path, metadata: Mapping[str, str] | None = None) -> str:
    """Write fp16 safetensors (architecture in the metadata); returns the sha256."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return save_tensors(state, path, {**model.metadata(), **(metadata or {})})


def load_fast(entry: ModelEntry, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
              ) -> FastAdaIN:
    """The trained net of a manifest entry (sha256-verified), frozen, on ``device``.

    The transformer runs in ``dtype`` (bf16 on capable CPUs); the predictor stays float32 because it
    runs once per style and its outputs are the net's most sensitive numbers.
    """
    from .cin import read_metadata

    what = f"fast AdaIN net {entry.name!r}"
    tensors = load_tensors(entry.file, entry.sha256, what)
    meta = read_metadata(entry.file, what)
    if json.loads(meta.get("code_layers", json.dumps(CODE_LAYERS))) != list(CODE_LAYERS):
        raise PresetError(f"{what}: {entry.file.name} was trained on another style code")
    with torch.inference_mode(False):
        model = FastAdaIN(Arch.from_json(meta.get("arch"), CIN_ARCH), int(meta.get("hidden", 256)))
        try:
            model.load_state_dict({k: v.float() for k, v in tensors.items()})
        except RuntimeError as exc:
            raise PresetError(f"{what}: {entry.file.name} does not fit the network ({exc})") from exc
        model = model.requires_grad_(False).eval().to(device)
        model.net.to(dtype)
    return model
