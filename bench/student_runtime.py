"""Runtimes of the AdaIN student and the VGG teacher on this machine, one 512 px stylization; prints JSON.

    .venv/bin/python bench/student_runtime.py [--student FILE] [--size 512] [--repeats 5]

Variants (issue 11, item 5): torch eager fp32 (NCHW), fp32 channels_last, whole-net bf16 channels_last (what
the adain method runs where the CPU has bf16: AVX512-BF16 or AMX), and the student's ONNX export (legacy
TorchScript exporter, needs ``onnx``) on OpenVINO in float32 and in its default precision (bf16 where the CPU
computes it natively: what the CLI's torch-free path runs, :mod:`stylizer.onnx_engine`) and, where installed, on
ONNX Runtime (float32). Each variant's output is compared with eager fp32 (max |diff| in [0, 1] pixels), so a
faster path that changes the picture shows up here. Process start-up is measured too: ``import torch`` against
``import openvino`` and ``import onnxruntime``, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylizer.adain import load_decoder, stylize_features  # noqa: E402
from stylizer.manifest import Manifest  # noqa: E402
from stylizer.student import MODEL_NAME, Student, load_student, load_student_file, macs  # noqa: E402
from stylizer.vgg import get_vgg  # noqa: E402


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: weights in cache, oneDNN primitives built
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def _import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(3)]
    return round(statistics.median(runs), 3)


class _Whole(torch.nn.Module):
    """content, mean, std -> picture: the graph an ONNX export holds."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return self.student(content, mean, std)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", type=Path, default=None, help="student file (default: the manifest's)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    manifest = Manifest.default()
    def load() -> Student:
        return load_student_file(args.student) if args.student else load_student(manifest)

    student = load()
    x = torch.rand(1, 3, args.size, args.size)
    mean, std = student.style_stats(torch.rand(1, 3, 256, 256))[:2]  # the network alone (recolouring: 3x3 per pixel)
    rows: list[dict] = []
    with torch.inference_mode():
        reference = student(x, mean, std).clamp(0, 1)

        def row(name: str, fn, out: torch.Tensor | None = None) -> None:
            seconds = _median_seconds(fn, args.repeats)
            diff = None if out is None else round(float((out.float().clamp(0, 1) - reference).abs().max()), 4)
            rows.append({"variant": name, "seconds": seconds, "max_abs_diff": diff})
            print(json.dumps(rows[-1]), file=sys.stderr)

        row("student eager fp32", lambda: student(x, mean, std))
        cl = load().to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        row("student fp32 channels_last", lambda: cl(x_cl, mean, std), cl(x_cl, mean, std))
        bf = cl.to(torch.bfloat16)
        x_bf = x_cl.to(torch.bfloat16)
        row("student bf16 channels_last", lambda: bf(x_bf, mean, std), bf(x_bf, mean, std))
        vgg, decoder = get_vgg(), load_decoder(manifest, "cpu").to(memory_format=torch.channels_last)
        vgg_cl = vgg.to(memory_format=torch.channels_last)
        f_mean, f_std = torch.rand(1, 512, 1, 1), torch.rand(1, 512, 1, 1) + 0.5

        def teacher(dtype: torch.dtype | None):
            def run() -> torch.Tensor:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is torch.bfloat16):
                    f = vgg_cl(x_cl, ["relu4_1"])["relu4_1"]
                    return decoder(stylize_features(f, f_mean, f_std, 1.0))
            return run

        row("teacher (VGG) fp32 channels_last", teacher(None))
        row("teacher (VGG) bf16 autocast", teacher(torch.bfloat16))
    result: dict = {"size": args.size, "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "student_gmac": round(macs(student.arch, args.size), 2), "rows": rows,
                    "model": MODEL_NAME, "import_torch_s": _import_seconds("torch")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "student.onnx"
        torch.onnx.export(_Whole(student), (x, mean, std), str(path), input_names=["content", "mean", "std"],
                          output_names=["out"], dynamic_axes={"content": {0: "n", 2: "h", 3: "w"},
                                                              "out": {0: "n", 2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
        feed = {"content": x.numpy(), "mean": mean.numpy(), "std": std.numpy()}
        import openvino as ov

        for label, config in (("f32", {"INFERENCE_PRECISION_HINT": "f32"}), ("default precision", {})):
            compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", **config})
            request = compiled.create_infer_request()
            precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            out = torch.from_numpy(request.infer(feed)[0].copy())
            row(f"student OpenVINO {label} ({precision})", lambda request=request: request.infer(feed), out)
        result["import_openvino_s"] = _import_seconds("openvino")
        try:
            import onnxruntime as ort
        except ImportError:
            result["onnxruntime"] = "not installed (pip install onnxruntime)"
        else:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = torch.from_numpy(session.run(None, feed)[0])
            row("student ONNX Runtime fp32", lambda: session.run(None, feed), out)
            result["import_onnxruntime_s"] = _import_seconds("onnxruntime")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
