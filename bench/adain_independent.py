"""A second held-out grid for ``adain`` at CLI defaults, never used to select a checkpoint; prints JSON.

    .venv/bin/python bench/adain_independent.py [vgg | student | cli | vgg=FILE@ALPHA:CORRELATION | student=FILE ...]

4 held-out photos other than ``bench/adain.py --held-out``'s, x 6 styles that the trainers hold out and that
grid does not use: kahlo and trial (paintings), retina (a PyPI picture), a stripes and a strokes texture (seeds
2000 and 2001), another photo. Medians of content_err / style_gap (and gram_gap, ssim) at 512 px (issue 11's
bar: <= 0.62 / <= 0.45), scored by ``bench/adain.py``'s quality loop. Each argument is an engine, optionally with
a weights file (and, for the teacher, the ``full_alpha`` and the correlated-AdaIN weight to try: ``vgg@1:0.5``,
``vgg:0``); ``cli`` is the CLI itself at its defaults.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import adain as bench  # noqa: E402

from stylizer.facade import Stylizer  # noqa: E402
from stylizer.image import list_images  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402
from stylizer.train.styles import KINDS, generate  # noqa: E402


def grid(folder: Path) -> tuple[list[Path], list[Path]]:
    photos = split_content(bench.SHARED / "content")[1][3:7]
    styles = [bench.SHARED / "styles" / "kahlo_self_portrait.jpg", bench.SHARED / "styles" / "trial.jpg",
              ROOT / ".data" / "pypi_styles" / "retina.jpg"]
    for i, kind in enumerate(KINDS[2:4]):
        path = folder / f"{kind}.png"
        generate(kind, 2000 + i, (512, 512)).save(path)
        styles.append(path)
    styles.append(list_images(bench.SHARED / "content")[650])
    return photos, [s for s in styles if s.exists()]


def main() -> None:
    specs = sys.argv[1:] or ["vgg"]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos, styles = grid(Path(tmp))
        bench.GRID = photos, styles  # bench/adain.py's quality loop, on this grid
        for spec in specs:
            if spec == "cli":  # the CLI as a user runs it (OpenVINO at the CPU's precision)
                result[spec] = bench.quality_cli(len(photos), len(styles), 512, None)
                continue
            head, _, corr = spec.partition(":")
            head, _, alpha = head.partition("@")
            engine, _, file = head.partition("=")
            weights = Path(file) if file else None
            stylizer = Stylizer(bench._manifest(weights if engine == "vgg" else None,
                                                weights if engine == "student" else None,
                                                float(alpha) if alpha else None, float(corr) if corr else None))
            result[spec] = bench.quality_ours(stylizer, len(photos), len(styles), 512, None, None, engine)
    print(json.dumps({"photos": [p.name for p in photos], "styles": [s.name for s in styles], **result}, indent=1))


if __name__ == "__main__":
    main()
