"""AdaIN (VGG teacher) quality per kind of style, for calibrating its default strength. Prints JSON.

    .venv/bin/python bench/adain_kinds.py                        # default grid, a few variants
    .venv/bin/python bench/adain_kinds.py --alphas 0.8 1.0 --photos 4

Why: ``full_alpha = 0.8`` was tuned on paintings from ../shared only, and users send textures, patterns and
photos as styles too (issue 11: on such styles the default left style_gap at 0.56). The grid here holds all
three kinds apart, none of them seen by the decoder's training or the CIN presets:

* photos: every 100th content photo (the held-out ones), ``--photos`` of them;
* ``painting``: paintings spread over ../shared/data/styles;
* ``texture``: procedural noise / mosaic / stripes / strokes in random palettes (:mod:`stylizer.train.styles`);
* ``photo``: content photos used as styles (not the held-out ones).

Variants: ``a=<alpha>`` one pass at that feature-interpolation alpha; ``2x<alpha>``: a second AdaIN pass over
the first pass's output (more style for more time); ``+colour``: the output's RGB mean/std moved to the
style's. Medians per kind of content_err / style_gap at 512 px (bar: style_gap <= 0.45 at content_err <= 0.62).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylizer import image as img  # noqa: E402
from stylizer.adain import Target  # noqa: E402
from stylizer.engines import correlation  # noqa: E402
from stylizer.manifest import Manifest  # noqa: E402
from stylizer.methods import StyleInput, get_method  # noqa: E402
from stylizer.metrics import quality  # noqa: E402
from stylizer.train.styles import KINDS, generate  # noqa: E402
from stylizer.vgg import get_vgg  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def grid(n_photos: int, n_paintings: int, n_photo_styles: int) -> tuple[list[Path], dict[str, list]]:
    contents = sorted((SHARED / "content").glob("*.jpg"))
    held_out = contents[::100][:n_photos]
    paintings = sorted((SHARED / "styles").glob("*.jpg"))
    step = max(1, len(paintings) // n_paintings)
    styles: dict[str, list] = {
        "painting": paintings[step // 2::step][:n_paintings],
        "texture": [generate(kind, 1000 + i, (512, 512)) for i, kind in enumerate(KINDS)],
        "photo": [p for p in contents[50::100] if p not in held_out][:n_photo_styles],
    }
    return held_out, styles


def colour_match(out: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    mo, so = out.mean((2, 3), keepdim=True), out.std((2, 3), keepdim=True) + 1e-5
    ms, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True)
    return ((out - mo) / so * ss + ms).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--paintings", type=int, default=4)
    ap.add_argument("--photo-styles", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--variants", nargs="+", default=["a=0.8", "a=1.0", "a=0.8+colour", "a=1.0+colour",
                                                      "2x0.8", "2x0.8+colour"])
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    manifest = Manifest.default()
    method = get_method("adain")
    device = torch.device("cpu")
    vgg = get_vgg(device)
    weight = correlation(manifest)
    photos, styles = grid(args.photos, args.paintings, args.photo_styles)
    scores: dict[str, dict[str, list[dict]]] = {v: {k: [] for k in styles} for v in args.variants}
    seconds: dict[str, float] = dict.fromkeys(args.variants, 0.0)
    for kind, items in styles.items():
        for s_index, item in enumerate(items):
            pil = item if not isinstance(item, Path) else img.load_image(item)
            style = img.pil_to_tensor(img.resize_long_side(pil, args.size))
            mean, std, root = method.stats_for(StyleInput(1.0, image=style, key=f"{kind}{s_index}"), vgg, device)
            # the shipped correlated AdaIN, at each variant's alpha
            target = partial(Target, mean, std, root=root if weight else None, correlation=weight)
            for photo in photos:
                content = img.pil_to_tensor(img.resize_long_side(img.load_image(photo), args.size))
                for variant in args.variants:
                    t0 = time.perf_counter()
                    base = variant.split("+")[0]
                    if base.startswith("2x"):
                        alpha = float(base[2:])
                        out = method.stylize_batch(content, target(alpha), manifest, device)
                        out = method.stylize_batch(out, target(alpha), manifest, device)
                    else:
                        out = method.stylize_batch(content, target(float(base[2:])), manifest, device)
                    if variant.endswith("+colour"):
                        out = colour_match(out, style)
                    seconds[variant] += time.perf_counter() - t0
                    q = quality(out, content, style)
                    scores[variant][kind].append(q)
                print(f"{kind} {s_index} {photo.name} done", file=sys.stderr)
    report: dict = {"size": args.size, "photos": [p.name for p in photos],
                    "styles": {k: [v.name if isinstance(v, Path) else f"{KINDS[i]} seed {1000 + i}"
                                   for i, v in enumerate(items)] for k, items in styles.items()},
                    "bar": {"style_gap": 0.45, "content_err": 0.62}, "variants": {}}
    for variant, by_kind in scores.items():
        row = {kind: {m: round(statistics.median(q[m] for q in rows), 3) for m in ("content_err", "style_gap")}
               for kind, rows in by_kind.items()}
        every = [q for rows in by_kind.values() for q in rows]
        row["all"] = {m: round(statistics.median(q[m] for q in every), 3) for m in ("content_err", "style_gap")}
        row["seconds_per_image"] = round(seconds[variant] / len(every), 3)
        report["variants"][variant] = row
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
