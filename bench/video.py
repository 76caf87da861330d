"""Video benchmark: speed of the fast methods on clips, and flicker with and without the coherence step.

    python bench/video.py [--sizes 360 720] [--frames 24] [--methods cin johnson adain] [--device auto]
        [--keep DIR]

Clips are camera pans made on the spot over held-out photos (never trained on): 24 fps, a 440 Hz tone,
panning 2.5 px a frame at the output size (not a multiple of the nets' stride, the hard case), so the
true motion is known and ``stylizer.metrics.pan_warping_error`` can undo it.

* ``speed``: frames/s of ``Stylizer.stylize_video`` (decode + stylize + encode, the whole pipeline) at
  each size (short side, 16:9) for each method, coherent and per-frame.
* ``flicker``: at 360p, per method, the warping error of our output and of per-frame stylization
  (each frame on its own, same preset) and their ratio (bar: <= 0.5), and the style_gap of three middle
  frames against the style picture (median), ours / per-frame (bar: <= 1.15).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from clips import pan_frames, write_clip  # noqa: E402
from PIL import Image  # noqa: E402
from preset_quality import default_dirs  # noqa: E402

from stylizer import video  # noqa: E402
from stylizer.facade import StyleRef, Stylizer, StylizeRequest  # noqa: E402
from stylizer.metrics import pan_warping_error, quality  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402

SHIFT = 2.5  # px a frame at the output size
STYLES = {"cin": "starry_night", "johnson": "johnson_great_wave", "adain": "picasso_seated_nude_hr.jpg"}


def make_pan(photo: Path, short: int, frames: int, out: Path) -> tuple[Path, list[np.ndarray]]:
    """A 16:9 pan rendered at twice the size with a 5 px step, then halved (2.5 px, sub-pixel)."""
    w, h = round(short * 16 / 9 / 2) * 2, short
    big = pan_frames(Image.open(photo), frames, (2 * w, 2 * h), int(2 * SHIFT))
    small = [np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.LANCZOS)) for f in big]
    return write_clip(out, small, fps=24), small


def styles_for(method: str, stylizer: Stylizer, style_dir: Path) -> tuple[list[StyleRef], Path]:
    """The style refs of the method's test style, and the picture its style_gap is measured against."""
    name = STYLES[method]
    if method == "adain":
        return [StyleRef(image=style_dir / name)], style_dir / name
    return [StyleRef(preset=name)], style_dir / stylizer.manifest.preset(name).source


def run(stylizer: Stylizer, clip: Path, method: str, refs: list[StyleRef], out: Path, coherent: bool,
        device: str) -> float:
    request = StylizeRequest(content=clip, styles=refs, method=method, size=None, device=device)
    t = time.perf_counter()
    result = stylizer.stylize_video(request, out, coherent=coherent)
    return result.info.frames / (time.perf_counter() - t)


def middle_style_gap(frames: list[np.ndarray], source: list[np.ndarray], style: Path) -> float:
    mid = len(frames) // 2
    return statistics.median(quality(Image.fromarray(frames[i]), Image.fromarray(source[i]), str(style))["style_gap"]
                             for i in (mid - 3, mid, mid + 3))


def main() -> None:
    content_dir, style_dir = default_dirs()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[360, 720])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--methods", nargs="+", default=["cin", "johnson", "adain"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", type=Path, default=None, help="keep the clips here for a look")
    args = ap.parse_args()
    stylizer = Stylizer()
    _, held = split_content(content_dir)
    photo = held[1]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-video-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                                "load_avg": os.getloadavg()[0], "device": args.device},
                    "clip": {"photo": photo.name, "frames": args.frames, "fps": 24, "shift_px": SHIFT},
                    "speed": {}, "flicker": {}}
    clips = {size: make_pan(photo, size, args.frames, work / f"pan_{size}p.mp4") for size in args.sizes}
    for method in args.methods:
        refs, style = styles_for(method, stylizer, style_dir)
        run(stylizer, clips[args.sizes[0]][0], method, refs, work / "warmup.mp4", True, args.device)
        for size, (clip, _) in clips.items():
            fps = {}
            for coherent in (True, False):
                out = work / f"{method}_{size}p_{'coherent' if coherent else 'per_frame'}.mp4"
                fps["coherent" if coherent else "per_frame"] = round(run(stylizer, clip, method, refs, out,
                                                                         coherent, args.device), 2)
            report["speed"][f"{method}@{size}p"] = fps
            print(f"{method} {size}p fps {fps}", file=sys.stderr, flush=True)
        size = args.sizes[0]
        source = clips[size][1]
        ours = video.read_frames(work / f"{method}_{size}p_coherent.mp4")
        alone = video.read_frames(work / f"{method}_{size}p_per_frame.mp4")
        w_ours, w_alone = pan_warping_error(ours, SHIFT), pan_warping_error(alone, SHIFT)
        g_ours, g_alone = middle_style_gap(ours, source, style), middle_style_gap(alone, source, style)
        report["flicker"][method] = {
            "size": f"{size}p", "style": style.name, "input_warping_error": round(pan_warping_error(source, SHIFT), 6),
            "warping_error": {"ours": round(w_ours, 6), "per_frame": round(w_alone, 6),
                              "ratio": round(w_ours / w_alone, 3)},
            "style_gap_middle": {"ours": round(g_ours, 4), "per_frame": round(g_alone, 4),
                                 "ratio": round(g_ours / g_alone, 3)},
        }
        print(f"{method} flicker {report['flicker'][method]}", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
