"""Benchmark of the ``gatys`` method against the peer ``pastiche`` 1.6.0; prints one JSON document.

Both run as the command lines a user would type, on the same content/style pairs from
../shared/data, one after the other per pair (so a noisy neighbour hurts both alike):

* ours:   ``python -m stylizer stylize C --style S --method gatys --size 384 --steps 200 -o O``
* peer:   ``pastiche --optimizer lbfgs --num-steps 200 --size 384 --device cpu -c C -s S -o O``
  (its defaults: content relu4_2 x 0.01, style Grams relu1_1..relu5_1 x 10/C^2, no TV, init from
  the content, style resized to the content's pixel count, fp32, one VGG pass per step)

For each run: wall time (process start to exit, model loading included), the children's CPU time,
and ``stylizer.metrics.quality(output, content, style)`` (brief section 4). The summary gives the
per-pair ratios ours/peer (time, content_err, style_gap) and their medians. The machine's load
average is recorded because other jobs on a shared CPU inflate wall times.

Usage: ``python bench/gatys.py [--pairs 3] [--size 384] [--steps 200] [--device cpu] [--no-peer]``
(``--peer-results FILE`` reuses peer numbers from an earlier run's JSON; ``--keep DIR`` keeps images).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stylizer.metrics import quality  # noqa: E402

log = logging.getLogger("bench.gatys")

SHARED = Path(os.environ.get("STYLEBOT_SHARED", ROOT.parent / "shared")) / "data"
#: Fixed pairs (portrait-ish, landscape, busy scene) so runs are comparable over time.
PAIRS = [
    ("bsds_147021.jpg", "van_gogh_starry_night.jpg"),
    ("coco_000000000532.jpg", "candy.jpg"),
    ("bsds_271008.jpg", "hokusai_great_wave.jpg"),
    ("coco_000000128051.jpg", "la_muse.jpg"),
    ("bsds_388067.jpg", "picasso_self_portrait.jpg"),
]
#: The peer's CLI: $PASTICHE_CLI, else next to this interpreter, else on PATH.
PASTICHE = os.environ.get("PASTICHE_CLI") or str(Path(sys.executable).parent / "pastiche")
if not Path(PASTICHE).exists():
    PASTICHE = shutil.which("pastiche") or PASTICHE


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, CPU seconds of the child) or raise with its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_ours(content: Path, style: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "stylizer", "stylize", str(content), "--style", str(style), "--method", "gatys",
           "--size", str(args.size), "--steps", str(args.steps), "--device", args.device, "--seed", "0",
           "-o", str(out)]
    wall, cpu = _timed(cmd)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), **_quality(out, content, style)}


def run_peer(content: Path, style: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [PASTICHE, "--optimizer", "lbfgs", "--num-steps", str(args.steps), "--size", str(args.size),
           "--device", "cpu", "--seed", "0", "--no-verbose", "-c", str(content), "-s", str(style), "-o", str(out)]
    wall, cpu = _timed(cmd)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), **_quality(out, content, style)}


def _quality(out: Path, content: Path, style: Path) -> dict:
    return {k: round(v, 4) for k, v in quality(str(out), str(content), str(style)).items()}


def summarise(rows: list[dict]) -> dict:
    both = [r for r in rows if "peer" in r and "ours" in r]
    if not both:
        return {}
    ratio = {
        "time": [r["ours"]["wall_s"] / r["peer"]["wall_s"] for r in both],
        "content_err": [r["ours"]["content_err"] / r["peer"]["content_err"] for r in both],
        "style_gap": [r["ours"]["style_gap"] / r["peer"]["style_gap"] for r in both],
        "gram_gap": [r["ours"]["gram_gap"] / r["peer"]["gram_gap"] for r in both],
    }
    summary = {f"median_ratio_{k}": round(statistics.median(v), 3) for k, v in ratio.items()}
    summary["max_ratio_time"] = round(max(ratio["time"]), 3)
    summary["speedup_median"] = round(1 / summary["median_ratio_time"], 2)
    summary["all_pairs_meet_bar"] = all(
        t <= 0.25 and c <= 1.05 and s <= 1.05
        for t, c, s in zip(ratio["time"], ratio["content_err"], ratio["style_gap"], strict=True)
    )
    for who in ("ours", "peer"):
        for key in ("wall_s", "content_err", "style_gap", "gram_gap", "ssim"):
            summary[f"{who}_median_{key}"] = round(statistics.median(r[who][key] for r in both), 4)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peer", action="store_true", help="skip pastiche")
    parser.add_argument("--peer-results", type=Path, help="reuse peer numbers from an earlier JSON output")
    parser.add_argument("--keep", type=Path, help="keep output images in this folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    previous = {}
    if args.peer_results:
        previous = {(r["content"], r["style"]): r["peer"] for r in json.loads(args.peer_results.read_text())["pairs"]
                    if "peer" in r}
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench_gatys_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    load_before = os.getloadavg()
    for content_name, style_name in PAIRS[: args.pairs]:
        content, style = SHARED / "content" / content_name, SHARED / "styles" / style_name
        row: dict = {"content": content_name, "style": style_name}
        stem = f"{Path(content_name).stem}__{Path(style_name).stem}"
        if (content_name, style_name) in previous:
            row["peer"] = previous[(content_name, style_name)]
        elif not args.no_peer:
            log.info("pastiche %s + %s", content_name, style_name)
            row["peer"] = run_peer(content, style, out_dir / f"{stem}__pastiche.png", args)
        log.info("ours %s + %s", content_name, style_name)
        row["ours"] = run_ours(content, style, out_dir / f"{stem}__gatys.png", args)
        row["load_avg_1m"] = round(os.getloadavg()[0], 2)
        log.info("%s", json.dumps(row))
        rows.append(row)
    result = {
        "bench": "gatys",
        "size": args.size,
        "steps": args.steps,
        "device": args.device,
        "cpu_count": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "peer": "pastiche 1.6.0 (lbfgs, defaults)" if not args.no_peer or previous else None,
        "pairs": rows,
        "summary": summarise(rows),
        "outputs": str(out_dir) if args.keep else None,
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
