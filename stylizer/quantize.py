"""int8 for the teacher's OpenVINO graphs, for CPUs with VNNI (issue 32).

On a CPU without AMX (an AMD EPYC: avx512_bf16 and VNNI) OpenVINO's bf16 is slower than f32, which takes ~0.67 s
a 512 px picture, while int8 convolutions on VNNI take ~0.28 s; with AMX, bf16 takes ~0.11 s and int8 less again (a
folder of 20 at 512 px 2.17 s against 2.66 s). It costs a little style: paired with f32 on the same pairs (the
decoder before issue 32's fine-tune; held-out medians with today's: int8 0.559 / 0.429, f32 0.558 / 0.415), style_gap
+0.0055 and content_err -0.0047 on average over 21 held-out pairs (bf16 +0.0007 / -0.0011), +0.0021 / -0.0023 over
the 24 of ``bench/adain_independent.py``; half of it is the decoder's last two convs, which in f32 would cost more
time than the rest of the decoder, and wider or narrower ranges only add to it. So :func:`choose_precision` picks
int8 wherever there is VNNI (AMX machines have it too), bf16 with AMX when there is no int8 graph, else f32.

The int8 graph is the fp32 export with QuantizeLinear/DequantizeLinear pairs in front of the convolutions
(OpenVINO runs such pairs as int8 kernels): weights per output channel, symmetric; each conv's input per tensor,
from ranges calibrated once on photos and style pictures of every kind (``python -m stylizer calibrate-int8``,
committed as ``weights/int8_ranges.json`` with the decoder's sha256 and the validation figures), and each conv's
bias corrected for its weights' rounding with its input's channel means, measured in the same run
(:func:`_corrected_bias`). The style graph is the same encoder and gets the same treatment (its first convs'
ranges): 0.30 -> 0.09 s for a 512 px style picture on VNNI, relu4_1 mean / std / correlation within 0.7 / 0.4 /
1.8 % of f32 (1.6 / 0.8 / 2.1 % without the bias correction); with AMX the style graph runs in bf16 instead
(:func:`style_precision`). The first conv reads the picture's own 8-bit values, which uint8 holds exactly
(:func:`_picture_values_in`; quantized mean-subtracted, a step was 1.2 levels). What stays in higher precision:
the AdaIN statistics and correlated AdaIN's mixing, which are not the network's convs. Max pools, like the pads
and upsamplings, pass int8 through (:func:`_moves_values`). The decoder's last conv, which draws the three
channels, is int8 too since its reflection pad moves int8 (below): 8 % of a picture, half a grey level on average.
:func:`validate_encoder` checks the encoder layer by layer: the channel mean and std of relu1_1..relu4_1 of the
int8 graph against fp32.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: convs left in higher precision at each end of the stylize graph
SKIP_FIRST, SKIP_LAST = 0, 0
#: VGG-19 to relu4_1, the encoder: the first convs of the stylize graph and all of the style graph's
ENCODER_CONVS = 9
#: the calibrated input range of each conv (in graph order) is this quantile of its values
QUANTILE = 0.9999
RANGES_NAME = "int8_ranges.json"
TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
PRECISION_ENV = "STYLIZER_PRECISION"
#: oneDNN's own limit on the instructions it uses (e.g. ``AVX512_CORE_BF16``: no AMX)
ISA_LIMIT_ENV = "ONEDNN_MAX_CPU_ISA"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernels will use them: without AMX's when ``ONEDNN_MAX_CPU_ISA`` holds oneDNN
    (OpenVINO's CPU kernels) below AMX, as when a Xeon stands in for an EPYC in a benchmark."""
    import os

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    limit = os.environ.get(ISA_LIMIT_ENV, "").upper()
    if limit and "AMX" not in limit and limit not in ("ALL", "DEFAULT"):
        flags = {f for f in flags if not f.startswith("amx")}
    return flags


def choose_precision(available: Sequence[str] = ("bf16", "int8", "f32")) -> str:
    """``$STYLIZER_PRECISION`` when it names one of ``available``, else by the CPU: int8 with VNNI (AVX-512, AVX
    or AMX's), bf16 with AMX, f32 otherwise."""
    import os

    wanted = os.environ.get(PRECISION_ENV, "auto").strip().lower()
    if wanted in available:
        return wanted
    flags = cpu_flags()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} and "int8" in available:
        return "int8"
    if "amx_bf16" in flags and "bf16" in available:
        return "bf16"
    return "f32"


def style_precision(precision: str) -> str:
    """The style graph's precision when the stylize graph runs at ``precision``: bf16 instead of int8 where the CPU
    has AMX, else the same.

    A run measures its style once and every picture is drawn towards those statistics, so their error counts more
    than any one conv's: int8's (relu4_1 mean / std / correlation 1.6 / 0.8 / 2.2 % off f32 on 26 styles of every
    kind; no conv dominates it, and wider ranges do not help) costs style_gap 0.004-0.008 through the CLI, which
    bf16 gives back (independent grid 0.552 / 0.450 -> 0.556 / 0.446, held-out 0.558 / 0.430 -> 0.558 / 0.423) for
    15 ms a run with AMX (a 512 px style: 0.029 -> 0.044 s). Without AMX the same costs 0.22 s (int8 0.087 s, f32
    0.31 s, bf16 0.54 s), 6 % of a folder of 20: int8 stays.
    """
    return "bf16" if precision == "int8" and "amx_bf16" in cpu_flags() else precision


# --- calibration ---------------------------------------------------------------------------------------------------

def conv_input_stats(module, feeds: Sequence[tuple]) -> tuple[list[list[float]], list[list[float]]]:  # type: ignore[no-untyped-def]
    """(ranges, means) of each ``nn.Conv2d``'s input over ``module(*feed)`` for every feed, in module order (the
    order the exported graph lists them). A range is [low, high]: the low is the minimum (0 after a ReLU), the high
    the :data:`QUANTILE` of the magnitudes (a few outliers would otherwise widen every step). A conv's means are
    its input's channel means, averaged over the feeds: what :func:`quantize_graph`'s bias correction needs."""
    import torch

    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    ranges = [[0.0, 0.0] for _ in convs]
    sums: list[torch.Tensor | None] = [None] * len(convs)
    counts = [0] * len(convs)

    def hook(i: int):  # type: ignore[no-untyped-def]
        def record(_m, inputs) -> None:  # type: ignore[no-untyped-def]
            x = inputs[0].detach().float()
            flat = x.flatten()
            sample = flat[:: max(1, flat.numel() // 2_000_000)]
            ranges[i][0] = min(ranges[i][0], float(flat.min()))
            ranges[i][1] = max(ranges[i][1], float(torch.quantile(sample.abs(), QUANTILE)))
            means = x.double().mean(dim=(0, 2, 3))
            sums[i] = means if sums[i] is None else sums[i] + means
            counts[i] += 1
        return record

    handles = [c.register_forward_pre_hook(hook(i)) for i, c in enumerate(convs)]
    try:
        with torch.no_grad():
            for feed in feeds:
                module(*feed)
    finally:
        for h in handles:
            h.remove()
    means = [[] if total is None else [round(float(v), 5) for v in total / n]
             for total, n in zip(sums, counts, strict=True)]
    return [[round(lo, 4), round(hi, 4)] for lo, hi in ranges], means


class Calibration(NamedTuple):
    """``weights/int8_ranges.json``: each conv's input range and, since export version 7, its input channel means
    (None in an older file: no bias correction)."""

    ranges: list[list[float]]
    means: list[list[float]] | None


def read_calibration(folder: Path, decoder_sha256: str) -> Calibration | None:
    """The committed calibration when it was made with this decoder, else None (no int8 graph)."""
    path = folder / RANGES_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("decoder_sha256") != decoder_sha256:
        return None
    return Calibration(data["ranges"], data.get("means"))


# --- the graph -------------------------------------------------------------------------------------------------------

def quantize_graph(src: Path, dst: Path, ranges: Sequence[Sequence[float]], convs: Sequence[int] | None = None,
                   raw_picture: bool = True, means: Sequence[Sequence[float]] | None = None) -> list[int]:
    """Write ``src`` (an ONNX graph) to ``dst`` with QDQ int8 in front of the convs ``convs`` (default: all but
    :data:`SKIP_FIRST` / :data:`SKIP_LAST`), ``ranges[i]`` being conv ``i``'s input range. Returns which.
    ``raw_picture``: the first conv reads the picture's own 8-bit values where it can (:func:`_picture_values_in`).
    ``means[i]``: conv ``i``'s input channel means (:func:`conv_input_stats`); given, each int8 conv's bias is
    corrected for its weights' rounding (:func:`_corrected_bias`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            consumers[name] = consumers.get(name, 0) + 1
    # the network's convs (weights in the graph), not correlated AdaIN's mixing (a 1x1 conv by an input)
    nodes = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in inits]
    if len(nodes) != len(ranges):
        raise ValueError(f"{src.name} has {len(nodes)} convs, the ranges {len(ranges)}")
    chosen = list(range(SKIP_FIRST, len(nodes) - SKIP_LAST)) if convs is None else list(convs)
    before: dict[str, list] = {}
    for i in chosen:
        node, (low, high) = nodes[i], ranges[i]
        if i == 0 and raw_picture and (raw := _picture_values_in(graph, node, inits, producer)):
            node.name = node.name or f"qdq{i}"  # its QDQ nodes below go after these, in front of the same node
            before[node.name] = raw
            low, high = 0.0, 255.0  # the picture's own 8-bit values: uint8 at a step of 1 is exact
        # The decoder's reflection pads and nearest upsamplings only move values, so quantizing before them
        # gives the same numbers; there OpenVINO fuses the quantization into the previous conv and moves
        # int8 through them instead of float32 (the unfused quantize and the reference Pad were 12 % of a picture).
        head = node
        while (source := producer.get(head.input[0])) is not None and _moves_values(source) \
                and consumers.get(source.output[0]) == 1:
            head = source
        signed = low < 0  # the picture, or AdaIN's target: int8 around 0; after a ReLU: uint8 from 0
        scale = max(high, -low) / 127 if signed else high / 255
        p = f"qdq{i}"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(max(scale, 1e-12), np.float32), f"{p}_scale"),
            helper.make_tensor(f"{p}_zero", TensorProto.INT8 if signed else TensorProto.UINT8, [], [0]),
        ])
        weight = numpy_helper.to_array(inits[node.input[1]])
        w_int, w_scale = _int8_weights(weight)
        if means is not None and len(node.input) > 2:
            # looked up anew: the first conv's may be the raw-picture rewiring's, added above
            bias = next(t for t in graph.initializer if t.name == node.input[2])
            graph.initializer.remove(bias)
            graph.initializer.append(numpy_helper.from_array(
                _corrected_bias(numpy_helper.to_array(bias), weight, w_int, w_scale, means[i]), bias.name))
        graph.initializer.remove(inits[node.input[1]])
        graph.initializer.extend([numpy_helper.from_array(w_int, f"{p}_w"),
                                  numpy_helper.from_array(w_scale, f"{p}_w_scale"),
                                  numpy_helper.from_array(np.zeros(len(w_int), np.int8), f"{p}_w_zero")])
        if not head.name:
            head.name = p
        before.setdefault(head.name, []).extend([
            helper.make_node("QuantizeLinear", [head.input[0], f"{p}_scale", f"{p}_zero"], [f"{p}_q"]),
            helper.make_node("DequantizeLinear", [f"{p}_q", f"{p}_scale", f"{p}_zero"], [f"{p}_x"]),
            helper.make_node("DequantizeLinear", [f"{p}_w", f"{p}_w_scale", f"{p}_w_zero"], [f"{p}_wx"], axis=0),
        ])
        head.input[0], node.input[1] = f"{p}_x", f"{p}_wx"
    ordered = []
    for node in graph.node:
        ordered.extend(before.get(node.name, []))
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.save(model, str(dst))
    return chosen


def _int8_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A conv's weights as int8 and their scale per output channel (symmetric: ``w ~ w_int * scale``)."""
    weight = weight.astype(np.float32)
    scale = np.maximum(np.abs(weight).reshape(len(weight), -1).max(1) / 127, 1e-12).astype(np.float32)
    return np.clip(np.round(weight / scale[:, None, None, None]), -127, 127).astype(np.int8), scale


def _corrected_bias(bias: np.ndarray, weight: np.ndarray, w_int: np.ndarray, w_scale: np.ndarray,
                    means: Sequence[float]) -> np.ndarray:
    """A conv's bias less what its int8 weights' rounding adds to its output on average (Nagel et al. 2019, "Data-Free
    Quantization Through Weight Equalization and Bias Correction"): ``(w_int * scale - w)`` summed over the kernel,
    times the input's channel means. Rounding errors are small one by one, but they do not average out over a
    channel's 576-4608 products, and they compound through VGG's ReLUs. With it the style graph's relu4_1 channel
    mean / std / correlation are 0.66 / 0.42 / 1.75 % off float32's on 18 held-out style pictures and photos
    (1.62 / 0.84 / 2.05 % without), the encoder's relu4_1 mean / std 0.75 / 0.72 % on calibrate-int8's held-out
    pictures (1.64 / 0.91 %); through the CLI style_gap drops 0-0.005 (content_err +0.001), for nothing at run time."""
    error = (w_int.astype(np.float64) * w_scale[:, None, None, None].astype(np.float64) - weight.astype(np.float64))
    shift = error.sum(axis=(2, 3)) @ np.asarray(means, np.float64)
    return (bias.astype(np.float64) - shift).astype(np.float32)


def _picture_values_in(graph, conv, inits, producer) -> list:  # type: ignore[no-untyped-def]
    """Rewire VGG's first conv to read the picture's 0..255 values, which an 8-bit picture quantizes to exactly;
    returns the nodes to put in front of it (none, and nothing changed, when no mean subtraction precedes it).

    VGG subtracts its mean colour, then the conv pads with zeros: the same as padding the 0..255 picture with the
    mean colour. So the subtraction stays, a zero pad follows it, the mean is added back, and the conv runs
    unpadded with the mean folded into its bias (with the weights as int8 rounds them, so the conv is exactly the
    float32 one with rounded weights). Its only error is its weights' (+0.1 grey levels mean against float32 over
    the whole int8 graph's ~2.6; rewired alone, in float32, 0.0 on 6 photos), and it saves the float32 conv and
    the reorder to uint8 behind it (~10 ms, 4 % of a 512 px picture on one EPYC-like core).
    A mean-subtracted input quantized per tensor lost 1.2 levels a step (2.5 grey levels on average).
    """
    from onnx import helper, numpy_helper

    sub = producer.get(conv.input[0])
    if sub is None or sub.op_type != "Sub" or conv.input[2] not in inits:
        return []
    source = producer.get(sub.input[1])
    if source is not None and source.op_type == "Constant":
        mean = numpy_helper.to_array(source.attribute[0].t)
    elif sub.input[1] in inits:
        mean = numpy_helper.to_array(inits[sub.input[1]])
    else:
        return []
    attrs = {a.name: a for a in conv.attribute}
    pad = [k // 2 for k in attrs["kernel_shape"].ints]
    if "pads" not in attrs or list(attrs["pads"].ints) != pad * 2:
        return []
    mean = mean.astype(np.float32).reshape(1, -1, 1, 1)
    w_int, w_scale = _int8_weights(numpy_helper.to_array(inits[conv.input[1]]))
    weight = w_int.astype(np.float32) * w_scale[:, None, None, None]
    bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float32)
    graph.initializer.remove(inits[conv.input[2]])
    folded = bias - (weight.sum(axis=(2, 3)) * mean.reshape(1, -1)).sum(1)
    graph.initializer.extend([
        numpy_helper.from_array(folded.astype(np.float32), "raw_bias"),
        numpy_helper.from_array(np.array([0, 0, *pad, 0, 0, *pad], np.int64), "raw_pads"),
        numpy_helper.from_array(mean, "raw_mean"),
    ])
    conv.input[2] = "raw_bias"
    attrs["pads"].ints[:] = [0] * len(attrs["pads"].ints)
    nodes = [helper.make_node("Pad", [sub.output[0], "raw_pads"], ["raw_padded"], mode="constant"),
             helper.make_node("Add", ["raw_padded", "raw_mean"], ["raw_picture"])]
    conv.input[0] = "raw_picture"
    return nodes


def _moves_values(node) -> bool:  # type: ignore[no-untyped-def]
    """Whether an ONNX node only moves or picks its input's values (so quantizing before it equals quantizing
    after, quantization being monotonic): a reflection or edge pad, a nearest-neighbour resize, a max pooling."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get("mode", b"constant" if node.op_type == "Pad" else b"nearest")
    return (node.op_type == "Pad" and mode in (b"reflect", b"edge")) or \
        (node.op_type == "Resize" and mode == b"nearest") or node.op_type == "MaxPool"


# --- layer-by-layer validation --------------------------------------------------------------------------------------

def validate_encoder(ranges: Sequence[Sequence[float]], pictures: Sequence[np.ndarray],
                     means: Sequence[Sequence[float]] | None = None) -> dict[str, dict[str, float]]:
    """The int8 encoder (bias-corrected with ``means``, as the export does) against fp32, tap by tap
    (relu1_1..relu4_1), on ``pictures`` ((1, 3, H, W) float32 in [0, 1]): the median over pictures of the relative
    error of the channel means and of the channel stds (``|int8 - fp32|`` summed over channels / ``|fp32|`` summed).
    Both run in OpenVINO (fp32: f32 precision)."""
    import openvino as ov
    import torch

    from .vgg import get_vgg

    class Taps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vgg = get_vgg("cpu")

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feats = self.vgg(x, TAPS)
            return tuple(feats[t] for t in TAPS)

    net = Taps().eval()
    encoder_convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.vgg.slice_to("relu4_1").modules())
    assert encoder_convs == ENCODER_CONVS
    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "encoder.onnx", Path(tmp) / "encoder_int8.onnx"
        with torch.no_grad():
            torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(fp32_path), input_names=["x"],
                              output_names=list(TAPS), dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17,
                              dynamo=False)
        quantize_graph(fp32_path, int8_path, ranges[:encoder_convs], range(SKIP_FIRST, encoder_convs),
                       means=None if means is None else means[:encoder_convs])
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        fp32, int8 = (core.compile_model(str(p), "CPU", config) for p in (fp32_path, int8_path))
        errors: dict[str, dict[str, list[float]]] = {t: {"mean": [], "std": []} for t in TAPS}
        for x in pictures:
            a, b = fp32(x), int8(x)
            for k, tap in enumerate(TAPS):
                fa, fb = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
                for stat, fn in (("mean", np.mean), ("std", np.std)):
                    sa, sb = fn(fa, axis=(0, 2, 3)), fn(fb, axis=(0, 2, 3))
                    errors[tap][stat].append(float(np.abs(sb - sa).sum() / max(np.abs(sa).sum(), 1e-12)))
    return {t: {s: round(float(np.median(v)), 4) for s, v in d.items()} for t, d in errors.items()}
