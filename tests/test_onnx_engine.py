"""AdaIN's torch-free path (issue 11: each engine's ONNX export on OpenVINO): the same pictures as the torch
engines, and a CLI run on stills that never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylizer import onnx_engine
from stylizer.adain import _pad_to_multiple, correlation_root, encoder, load_decoder, style_stats
from stylizer.engines import correlation as correlation_weight
from stylizer.export import export_onnx
from stylizer.facade import reflect_pad
from stylizer.features import stylize_features
from stylizer.image import edge_margin, pil_to_tensor, tensor_to_pil
from stylizer.manifest import Manifest
from stylizer.student import load_student
from stylizer.vgg import get_vgg

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("student", "vgg")


@pytest.fixture(scope="module")
def exported() -> dict[str, onnx_engine.OnnxEngine]:
    """The shipped engines' graphs, compiled in float32 (to compare with torch's float32 exactly)."""
    manifest = Manifest.default()
    graphs = {}
    for engine in ENGINES:
        if not onnx_engine.is_exported(manifest, engine):
            export_onnx(manifest, engine)
        graphs[engine] = onnx_engine.OnnxEngine.load(manifest, engine, fp32=True)
        assert graphs[engine] is not None
    return graphs


def _torch_engine(engine: str) -> tuple[Callable, Callable]:
    """(style picture -> statistics, (padded content, statistics, alpha) -> picture) as the torch engine runs them."""
    manifest = Manifest.default()
    if engine == "student":
        student = load_student(manifest)
        return (lambda s: student.style_stats(_pad_to_multiple(s, 8)),
                lambda x, stats, alpha: student(x, *stats, alpha=alpha))
    enc, dec = encoder("cpu"), load_decoder(manifest, "cpu")

    def measure(s: torch.Tensor) -> tuple[torch.Tensor, ...]:  # what the stylize graph takes: correlated AdaIN's root
        mean, std, corr = style_stats(get_vgg("cpu"), s)
        root = correlation_root(corr)
        return mean, std, root, torch.tensor(correlation_weight(manifest))

    return measure, lambda x, stats, alpha: dec(stylize_features(enc(x), *stats[:2], alpha, *stats[2:]))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("alpha", [1.0, 0.55])
def test_graphs_draw_what_the_torch_engine_draws(exported, content_image, style_image, engine, alpha) -> None:
    """float32 torch and float32 OpenVINO agree to a grey level or two, at sizes that are not multiples of 8 and
    differ from the ones the export was traced at (the graphs' height and width are dynamic), the student's
    recolouring and the teacher's correlated AdaIN included."""
    content, style = content_image.resize((101, 67)), style_image.resize((90, 61))
    measure, draw = _torch_engine(engine)
    with torch.inference_mode():
        stats = measure(pil_to_tensor(style))
        m = edge_margin((67, 101))  # the reflected margin both paths draw around the picture (clean edges)
        padded = reflect_pad(pil_to_tensor(content), m)
        ref = draw(_pad_to_multiple(padded, 8), stats, alpha)[..., m:m + 67, m:m + 101].clamp(0, 1)
    graphs = exported[engine]
    ov_stats = graphs.style_stats(style, correlation_weight(Manifest.default(), onnx_engine.ENGINE_MODELS[engine]))
    assert len(ov_stats) == len(stats) == 4
    for ours, theirs in zip(ov_stats, stats, strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-3, atol=1e-3)
    picture = graphs.stylize(content, ov_stats, alpha)
    assert picture.size == content.size
    diff = np.abs(np.asarray(picture, dtype=int) - np.asarray(tensor_to_pil(ref), dtype=int))
    assert diff.max() <= 2 and diff.mean() < 0.05
    # and it is a stylization, not the content passed through
    assert np.abs(np.asarray(picture, dtype=int) - np.asarray(content, dtype=int)).mean() > 10
    # OpenVINO at the CPU's precision (int8 for the teacher where there is VNNI, else bf16 where the CPU computes it
    # natively, statistics included, which torch's autocast keeps in float32): on this small synthetic picture ~5-6
    # grey levels on average off float32
    # (a broken graph is off by tens); on 512 px photos 1.1, with the same content_err / style_gap (the note of
    # issue 11)
    default = onnx_engine.OnnxEngine.load(Manifest.default(), engine)
    assert default is not None
    ov_err = np.abs(np.asarray(default.stylize(content, ov_stats, alpha), dtype=int)
                    - np.asarray(tensor_to_pil(ref), dtype=int))
    assert ov_err.mean() < 8, ov_err.mean()


def test_throughput_lanes_draw_the_same_pictures_at_once(exported, content_image, style_image) -> None:
    """A folder's engine (throughput hint) is called from its lanes' threads at once: each picture comes out as
    one drawn alone, none takes another's buffer."""
    from concurrent.futures import ThreadPoolExecutor

    manifest = Manifest.default()
    alone = exported["student"]
    lanes = onnx_engine.OnnxEngine(onnx_engine.export_dir(manifest, "student"), "student", fp32=True,
                                   throughput=True)
    assert lanes.lanes >= 1
    stats = alone.style_stats(style_image)
    pictures = [content_image.resize((72 + 8 * i, 48 + 4 * i)).rotate(90 * i, expand=True) for i in range(6)]
    with ThreadPoolExecutor(max(2, lanes.lanes)) as pool:
        together = list(pool.map(lambda p: lanes.stylize(p, stats, 1.0), pictures))
    for picture, ours in zip(pictures, together, strict=True):
        ref = alone.stylize(picture, stats, 1.0)
        assert ours.size == picture.size
        assert np.abs(np.asarray(ours, dtype=int) - np.asarray(ref, dtype=int)).max() <= 1


def test_padding_matches_the_torch_engine(content_image) -> None:
    for size in [(101, 67), (40, 17), (64, 48)]:
        picture = content_image.resize(size)
        ref = _pad_to_multiple(pil_to_tensor(picture), 8).numpy()
        np.testing.assert_array_equal(onnx_engine.to_array(picture), ref)


_PROBE = """
import json, sys
from stylizer.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules}))
"""


def _cli(args: list[str], **env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_cli_folder_runs_without_torch_and_matches_the_torch_path(exported, tmp_path, content_image,
                                                                    style_image, engine) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    content_image.save(folder / "a.jpg", quality=95)
    content_image.rotate(90, expand=True).save(folder / "b.png")
    style_image.save(tmp_path / "style.png")
    common = ["stylize", str(folder), "--style", str(tmp_path / "style.png"), "--size", "72", "--device", "cpu",
              "--opt", f"engine={engine}", "--fp32"]
    fast = _cli([*common, "-o", str(tmp_path / "fast")])
    slow = _cli([*common, "-o", str(tmp_path / "torch")], STYLIZER_ONNX="0")
    assert fast == {"rc": 0, "torch": False}
    assert slow == {"rc": 0, "torch": True}
    for name in ("a.png", "b.png"):
        ours, theirs = (np.asarray(Image.open(tmp_path / d / name), dtype=int) for d in ("fast", "torch"))
        assert ours.shape == theirs.shape and max(ours.shape[:2]) == 72
        assert np.abs(ours - theirs).max() <= 2


@pytest.mark.slow
def test_cli_takes_torch_for_what_the_graphs_do_not_draw(exported, tmp_path, content_image, style_image) -> None:
    """Colour preservation, a method option, a second style: the facade (torch), and still a picture."""
    content_image.save(tmp_path / "a.jpg")
    style_image.save(tmp_path / "style.png")
    base = ["stylize", str(tmp_path / "a.jpg"), "--size", "48", "--device", "cpu", "--method", "adain"]
    style = ["--style", str(tmp_path / "style.png")]
    runs = {
        "color": [*style, "--preserve-color", "--opt", "engine=student"],
        "option": [*style, "--opt", "engine=vgg", "--opt", "preview=1"],
        "two styles": ["--style", str(tmp_path / "style.png"), str(tmp_path / "a.jpg"), "--opt", "engine=student"],
    }
    for name, extra in runs.items():
        out = tmp_path / f"{name}.png"
        assert _cli([*base, *extra, "-o", str(out)]) == {"rc": 0, "torch": True}, name
        assert Image.open(out).size == (48, 32)


def test_export_is_keyed_by_the_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(onnx_engine.CACHE_ENV, str(tmp_path))
    manifest = Manifest.default()
    folders = {engine: onnx_engine.export_dir(manifest, engine) for engine in ENGINES}
    for engine, model in (("student", "adain_student"), ("vgg", "adain_decoder")):
        assert folders[engine].parent == tmp_path / "onnx"
        assert folders[engine].name.startswith(model) and manifest.model(model).sha256[:16] in folders[engine].name
        assert not onnx_engine.is_exported(manifest, engine)
        assert onnx_engine.OnnxEngine.load(manifest, engine) is None
    monkeypatch.setenv(onnx_engine.SWITCH_ENV, "0")
    assert not onnx_engine.enabled()


def test_exports_of_older_code_are_pruned(tmp_path, monkeypatch) -> None:
    """What a lower export version wrote is never read again: deleted (with OpenVINO's compiled copies); the
    current version's exports stay, whatever weights they belong to, but for the same weights' earlier ranges."""
    from stylizer.export import prune_stale_exports

    monkeypatch.setenv(onnx_engine.CACHE_ENV, str(tmp_path))
    current = onnx_engine.EXPORT_VERSION
    names = [f"adain_decoder-aaaa-bbbb-v{current - 1}", f"adain_student-cccc-v{current - 2}",
             f"adain_decoder-dddd-eeee-v{current}", f"adain_student-ffff-v{current}"]
    for name in names:
        (tmp_path / "onnx" / name).mkdir(parents=True)
        (tmp_path / "onnx" / name / onnx_engine.STYLE_GRAPH).write_bytes(b"graph")
    (tmp_path / "openvino").mkdir()
    assert sorted(p.name for p in prune_stale_exports()) == sorted(names[:2])
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(names[2:])
    assert not (tmp_path / "openvino").exists()
    assert prune_stale_exports() == []  # nothing stale left
    # a recalibration: the same decoder's export with its earlier ranges goes once the new one is written
    earlier, other = f"adain_decoder-dddd-0000-v{current}", f"adain_decoder-9999-eeee-v{current}"
    for name in (earlier, other):
        (tmp_path / "onnx" / name).mkdir()
    assert [p.name for p in prune_stale_exports(tmp_path / "onnx" / names[2])] == [earlier]
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([*names[2:], other])


@pytest.mark.slow
def test_first_cli_run_exports_then_bad_input_is_one_line(tmp_path, content_image, style_image) -> None:
    """With no export yet the CLI writes it (torch, once) and goes on; a corrupt photo on this path is the same
    one-line error, exit 2, as on torch's."""
    content_image.save(tmp_path / "a.jpg")
    style_image.save(tmp_path / "style.png")
    cache = tmp_path / "cache"
    args = ["stylize", str(tmp_path / "a.jpg"), "--style", str(tmp_path / "style.png"), "--size", "40",
            "--device", "cpu", "--opt", "engine=student", "-o", str(tmp_path / "out.png")]
    assert _cli(args, STYLIZER_CACHE_DIR=str(cache)) == {"rc": 0, "torch": True}
    assert Image.open(tmp_path / "out.png").size == (40, 27)
    assert [p.name for p in (cache / "onnx").iterdir()] == [onnx_engine.export_dir(Manifest.default(), "student").name]
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:200])
    args[1] = str(tmp_path / "broken.jpg")
    proc = subprocess.run([sys.executable, "-m", "stylizer", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "STYLIZER_CACHE_DIR": str(cache)}, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "broken.jpg" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.slow
def test_a_damaged_export_falls_back_to_torch(tmp_path, content_image, style_image) -> None:
    """A graph file cut short (a full disk, a killed export) must not cost the user the picture."""
    cache = tmp_path / "cache"
    env = {"STYLIZER_CACHE_DIR": str(cache)}
    assert _cli(["export-onnx"], **env) == {"rc": 0, "torch": True}
    exported = sorted(p.name for p in (cache / "onnx").iterdir())
    assert exported == sorted(onnx_engine.export_dir(Manifest.default(), e).name for e in ENGINES)
    graph = onnx_engine.export_dir(Manifest.default(), "student").name
    (cache / "onnx" / graph / onnx_engine.STYLIZE_GRAPH).write_bytes(b"not a graph")
    content_image.save(tmp_path / "a.jpg")
    style_image.save(tmp_path / "style.png")
    args = ["stylize", str(tmp_path / "a.jpg"), "--style", str(tmp_path / "style.png"), "--size", "40",
            "--device", "cpu", "--opt", "engine=student", "-o", str(tmp_path / "out.png")]
    assert _cli(args, **env) == {"rc": 0, "torch": True}
    assert Image.open(tmp_path / "out.png").size == (40, 27)


# --- int8 (stylizer.quantize): the teacher's graph for CPUs with VNNI but no AMX ------------------------------------

def test_int8_encoder_matches_fp32_layer_by_layer(content_image, style_image) -> None:
    """The committed ranges belong to the shipped decoder, and with them the int8 encoder's channel mean and std at
    relu1_1..relu4_1 stay within 5 % of fp32 (relu1_1 within 2 %: its conv reads the picture's exact 8-bit values,
    only its weights are rounded)."""
    from stylizer.quantize import read_calibration, validate_encoder

    entry = Manifest.default().model("adain_decoder")
    calibration = read_calibration(entry.file.parent, entry.sha256)
    assert calibration is not None, "weights/int8_ranges.json was calibrated for another decoder: run calibrate-int8"
    assert calibration.means is not None and [len(m) for m in calibration.means[:2]] == [3, 64]
    pictures = [np.asarray(p.convert("RGB").resize((128, 96)), np.float32).transpose(2, 0, 1)[None] / 255
                for p in (content_image, style_image)]
    figures = validate_encoder(calibration.ranges, pictures, calibration.means)
    assert figures["relu1_1"]["mean"] < 0.02 and figures["relu1_1"]["std"] < 0.02
    for tap, errors in figures.items():
        assert errors["mean"] < 0.05 and errors["std"] < 0.05, (tap, errors)
    assert figures["relu4_1"]["mean"] > 0  # and it is int8: something did change


def test_int8_bias_correction_brings_the_encoder_nearer_fp32(shared_data) -> None:
    """With each conv's bias corrected for its int8 weights' rounding (the committed channel means), the int8
    encoder's relu3_1 and relu4_1 channel means on held-out photos and style pictures are nearer fp32's than
    without: the rounding's average shift is what compounds through the ReLUs."""
    from stylizer.image import load_image, resize_long_side
    from stylizer.quantize import read_calibration, validate_encoder
    from stylizer.train.data import split_content

    entry = Manifest.default().model("adain_decoder")
    ranges, means = read_calibration(entry.file.parent, entry.sha256)
    paths = split_content(shared_data / "content")[1][:3] + sorted((shared_data / "styles").iterdir())[:3]
    pictures = [np.asarray(resize_long_side(load_image(p), 192), np.float32).transpose(2, 0, 1)[None] / 255
                for p in paths]
    corrected, plain = validate_encoder(ranges, pictures, means), validate_encoder(ranges, pictures)
    for tap in ("relu3_1", "relu4_1"):
        assert corrected[tap]["mean"] < 0.8 * plain[tap]["mean"], (tap, corrected, plain)


def test_int8_graph_draws_nearly_the_fp32_picture(exported, content_image, style_image) -> None:
    manifest = Manifest.default()
    folder = onnx_engine.export_dir(manifest, "vgg")
    for graph in (onnx_engine.STYLE_INT8_GRAPH, onnx_engine.STYLIZE_INT8_GRAPH):
        assert (folder / graph).is_file()  # written by the export with the committed ranges
    int8 = onnx_engine.OnnxEngine(folder, "vgg", precision="int8")
    assert int8.precision == "int8"
    content, style = content_image.resize((160, 120)), style_image.resize((96, 96))
    ref = np.asarray(exported["vgg"].stylize(content, exported["vgg"].style_stats(style), 1.0), np.float64)
    ours = np.asarray(int8.stylize(content, int8.style_stats(style), 1.0), np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((ours - ref) ** 2))
    assert 25 < psnr < 60, psnr  # close to fp32 (27 dB at this small size), and not fp32 itself


def test_precision_follows_the_cpu(monkeypatch) -> None:
    """int8 wherever there is VNNI (AMX machines too), bf16 with AMX when there is no int8 graph, f32 elsewhere;
    STYLIZER_PRECISION overrides."""
    from stylizer import quantize

    amx = {"amx_bf16", "amx_int8", "avx512_vnni", "avx512_bf16"}
    cases = ((amx, "int8", "bf16"), ({"avx512_vnni", "avx512_bf16"}, "int8", "f32"), ({"avx_vnni"}, "int8", "f32"),
             ({"avx2"}, "f32", "f32"))
    for flags, wanted, without_int8 in cases:
        monkeypatch.setattr(quantize, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.delenv(quantize.PRECISION_ENV, raising=False)
        assert quantize.choose_precision() == wanted, flags
        assert quantize.choose_precision(("bf16", "f32")) == without_int8, flags
        assert quantize.style_precision("int8") == ("bf16" if "amx_bf16" in flags else "int8"), flags
        assert quantize.style_precision("f32") == "f32" and quantize.style_precision("bf16") == "bf16"
    monkeypatch.setenv(quantize.PRECISION_ENV, "f32")
    assert quantize.choose_precision() == "f32"


def test_cpu_flags_drop_amx_when_onednn_is_held_below_it(monkeypatch) -> None:
    """``ONEDNN_MAX_CPU_ISA`` below AMX (a Xeon standing in for an EPYC) hides AMX from the precision choice too,
    so the emulated run picks what the EPYC would (the kernels could not use AMX anyway)."""
    from stylizer import quantize

    monkeypatch.delenv(quantize.ISA_LIMIT_ENV, raising=False)
    text = Path("/proc/cpuinfo").read_text()
    raw = set(next(ln for ln in text.splitlines() if ln.startswith("flags")).partition(":")[2].split())
    assert quantize.cpu_flags() == raw
    for limit, keeps_amx in (("AVX512_CORE_BF16", False), ("avx2", False), ("AVX512_CORE_AMX", True), ("ALL", True)):
        monkeypatch.setenv(quantize.ISA_LIMIT_ENV, limit)
        flags = quantize.cpu_flags()
        assert flags == (raw if keeps_amx else {f for f in raw if not f.startswith("amx")}), limit
        assert flags >= {f for f in raw if not f.startswith("amx")}


def test_style_graph_runs_bf16_beside_int8_with_amx(exported, style_image, monkeypatch) -> None:
    """Where the stylize graph is int8, the style graph is too without AMX (speed), and bf16 with AMX: its
    statistics steer every picture of a run, and bf16's are nearer float32's than int8's."""
    from stylizer import quantize

    folder = onnx_engine.export_dir(Manifest.default(), "vgg")
    style = style_image.resize((128, 128))
    ref = exported["vgg"].style_stats(style)
    errors = {}
    for flags, wanted in (({"amx_bf16", "amx_int8", "avx512_vnni"}, "bf16"), ({"avx512_vnni"}, "int8")):
        monkeypatch.setattr(quantize, "cpu_flags", lambda flags=flags: flags)
        engine = onnx_engine.OnnxEngine(folder, "vgg", precision="int8")
        assert engine.precision == "int8" and engine.style_precision == wanted
        mean, std = engine.style_stats(style)[:2]
        errors[wanted] = float(np.abs(mean - ref[0]).mean() + np.abs(std - ref[1]).mean())
    assert errors["bf16"] < errors["int8"], errors


def test_int8_quantizes_before_pads_and_upsampling_to_the_same_numbers(tmp_path, monkeypatch) -> None:
    """A conv behind a nearest upsampling and a reflection pad (the decoder's pattern): its input is quantized
    before them, so they move int8 (the quantization fused into the conv before), and the picture is the same as
    quantizing right at the conv."""
    import onnx
    import openvino as ov

    from stylizer import quantize

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Upsample(scale_factor=2),
                              torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(8, 3, 3)).eval()
    src = tmp_path / "net.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(src), input_names=["x"], opset_version=17,
                          dynamo=False)
    ranges = [[0.0, 1.0], [0.0, 2.0]]
    moved, at_conv = tmp_path / "moved.onnx", tmp_path / "at_conv.onnx"
    assert quantize.quantize_graph(src, moved, ranges, [0, 1]) == [0, 1]
    with monkeypatch.context() as m:
        m.setattr(quantize, "_moves_values", lambda node: False)
        quantize.quantize_graph(src, at_conv, ranges, [0, 1])

    producer = {out: n for n in onnx.load(str(moved)).graph.node for out in n.output}
    resize = next(n for n in producer.values() if n.op_type == "Resize")
    assert producer[resize.input[0]].op_type == "DequantizeLinear"  # quantized before the upsampling
    pad = next(n for n in producer.values() if n.op_type == "Pad")
    assert producer[pad.input[0]] is resize
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    outputs = [np.asarray(ov.Core().compile_model(str(p), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0])
               for p in (moved, at_conv)]
    assert outputs[0].shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_calibration_measures_each_convs_input_range_and_channel_means() -> None:
    """conv_input_stats: per conv (in module order) the input's [min, high quantile] over all feeds and its channel
    means averaged over the feeds, what the int8 graph's ranges and bias correction are made of."""
    from stylizer.quantize import conv_input_stats

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 1, 1)).eval()
    feeds = [(torch.randn(1, 2, 16, 16) + 3,), (torch.randn(1, 2, 8, 24) - 1,)]
    ranges, means = conv_input_stats(net, feeds)
    with torch.no_grad():
        hidden = [net[1](net[0](x)) for (x,) in feeds]
    want = [torch.stack([x.mean(dim=(0, 2, 3)) for (x,) in feeds]).mean(0),
            torch.stack([h.mean(dim=(0, 2, 3)) for h in hidden]).mean(0)]
    for got, expected in zip(means, want, strict=True):
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    assert ranges[0][0] == pytest.approx(min(float(x.min()) for (x,) in feeds), abs=1e-4) and ranges[1][0] == 0.0
    assert 0 < ranges[1][1] <= max(float(h.max()) for h in hidden) + 1e-4


def test_int8_bias_correction_removes_the_weights_rounding_on_average(tmp_path) -> None:
    """On an input whose channels hold their mean everywhere (integers, which uint8 holds exactly), the int8 conv
    with its bias corrected by those means draws float32's output; without, it is off by the weights' rounding."""
    import openvino as ov

    from stylizer import quantize

    torch.manual_seed(3)
    conv = torch.nn.Conv2d(6, 5, 3).eval()
    src = tmp_path / "conv.onnx"
    with torch.no_grad():
        torch.onnx.export(conv, (torch.rand(1, 6, 8, 8),), str(src), input_names=["x"], opset_version=17, dynamo=False)
    levels = [3.0, 40.0, 77.0, 120.0, 200.0, 250.0]
    x = np.array(levels, np.float32)[None, :, None, None] * np.ones((1, 6, 8, 8), np.float32)
    with torch.no_grad():
        want = conv(torch.from_numpy(x)).numpy()
    drawn = {}
    for name, means in (("plain", None), ("corrected", [levels])):
        dst = tmp_path / f"{name}.onnx"
        quantize.quantize_graph(src, dst, [[0.0, 255.0]], [0], means=means)
        drawn[name] = np.asarray(ov.Core().compile_model(str(dst), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0])
    corrected, plain = (float(np.abs(drawn[k] - want).max()) for k in ("corrected", "plain"))
    assert corrected < 1e-3 * float(np.abs(want).max()) and plain > 20 * corrected, (corrected, plain)


def test_int8_first_conv_reads_the_pictures_exact_values(tmp_path) -> None:
    """VGG's first conv, after its mean subtraction and zero padding, rewired to read the 0..255 picture padded by
    the mean colour (the mean folded into its bias): int8 then rounds only the weights, not an 8-bit picture, and
    draws what float32 draws with those weights, edges included."""
    import openvino as ov

    from stylizer import quantize
    from stylizer.vgg import CaffePreprocess

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    net = torch.nn.Sequential(CaffePreprocess(), conv).eval()
    src, int8 = tmp_path / "net.onnx", tmp_path / "int8.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(src), input_names=["x"], opset_version=17,
                          dynamic_axes={"x": {2: "h", 3: "w"}}, dynamo=False)
    assert quantize.quantize_graph(src, int8, [[-123.68, 151.061]], [0]) == [0]

    x = np.random.default_rng(0).integers(0, 256, (1, 3, 23, 17)).astype(np.float32) / np.float32(255)
    core = ov.Core()
    ref, rounded = (np.asarray(core.compile_model(str(p), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0])
                    for p in (src, int8))
    w = conv.weight.detach()
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    with torch.no_grad():
        expected = torch.nn.functional.conv2d(CaffePreprocess()(torch.from_numpy(x)), torch.round(w / scale) * scale,
                                              conv.bias, padding=1).numpy()
    np.testing.assert_allclose(rounded, expected, atol=2e-3 * np.abs(expected).max())
    assert np.abs(rounded - ref).max() > 1e-2  # and the weights were rounded
    # the picture quantized as it used to be, per tensor around the mean: off by whole steps
    at_conv = tmp_path / "at_conv.onnx"
    quantize.quantize_graph(src, at_conv, [[-123.68, 151.061]], [0], raw_picture=False)
    coarse = np.asarray(core.compile_model(str(at_conv), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0])
    assert np.abs(coarse - expected).mean() > 5 * np.abs(rounded - expected).mean()
