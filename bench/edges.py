"""Clean edges of the fast methods (issue 32): the border ratio per reflected margin, and what the margin costs.

    .venv/bin/python bench/edges.py [--photos 5] [--size 512] [--margins 0,8,16,24,32]

The measurement is the issue's: stylize a held-out photo as it is, and the same photo reflect-padded by 64 px then
cropped back; the outer 12 px band's mean difference over the interior's, median over the photos (1 = the edges
are as good as the middle; the bar is 1.3). Each method runs once per margin with the facade's ``margin`` option,
the 64 px reference with none (nothing can reach 64 px in). ``pixels`` is what the margin costs: the picture's
pixel count with it over without it (padded to a multiple of 8, as the networks run it); ``seconds`` the median
time of a stylization at that margin, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stylizer import image as img  # noqa: E402
from stylizer.facade import StyleRef, Stylizer, StylizeRequest  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402
from stylizer.train.pool import HELD_OUT_PAINTINGS  # noqa: E402

SHARED = Path(os.environ.get("STYLEBOT_SHARED", ROOT.parent / "shared")) / "data"
REFERENCE, BAND = 64, 12


def _styles(stylizer: Stylizer) -> dict[str, list[StyleRef]]:
    presets = {p.method: p.name for p in stylizer.manifest.enabled_presets()}
    painting = SHARED / "styles" / HELD_OUT_PAINTINGS[0]
    return {"adain": [StyleRef(image=painting)], "cin": [StyleRef(preset=presets["cin"])],
            "johnson": [StyleRef(preset=presets["johnson"])]}


def _pixels(h: int, w: int, margin: int) -> float:
    def padded(n: int) -> int:
        return -(-(n + 2 * margin) // 8) * 8
    return padded(h) * padded(w) / (-(-h // 8) * 8 * (-(-w // 8) * 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--margins", default="0,8,16,24,32")
    parser.add_argument("--methods", default="adain,cin,johnson")
    args = parser.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    stylizer = Stylizer()
    photos = split_content(SHARED / "content")[1][:args.photos]
    styles = _styles(stylizer)
    torch.set_grad_enabled(False)

    def run(t: torch.Tensor, method: str, margin: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        result = stylizer.stylize(StylizeRequest(content=img.tensor_to_pil(t), styles=styles[method],
                                                 size=max(t.shape[-2:]), method=method, device="cpu", margin=margin))
        return img.pil_to_tensor(result.image), time.perf_counter() - start

    report: dict[str, object] = {"size": args.size, "photos": [p.name for p in photos], "band": BAND,
                                 "reference_margin": REFERENCE, "methods": {}}
    for method in args.methods.split(","):
        ratios: dict[int, list[float]] = {m: [] for m in margins}
        seconds: dict[int, list[float]] = {m: [] for m in margins}
        for photo in photos:
            picture = img.pil_to_tensor(img.resize_long_side(img.load_image(photo), args.size))
            reference = run(F.pad(picture, (REFERENCE,) * 4, mode="reflect"), method, 0)[0]
            reference = reference[..., REFERENCE:-REFERENCE, REFERENCE:-REFERENCE]
            for margin in margins:
                out, took = run(picture, method, margin)
                diff = (out - reference).abs().mean(1)[0]
                band = torch.ones_like(diff, dtype=torch.bool)
                band[BAND:-BAND, BAND:-BAND] = False
                ratios[margin].append(float(diff[band].mean() / diff[~band].mean()))
                seconds[margin].append(took)
        h, w = picture.shape[-2:]
        report["methods"][method] = {  # type: ignore[index]
            str(m): {"ratio": round(statistics.median(ratios[m]), 3), "worst": round(max(ratios[m]), 3),
                     "pixels": round(_pixels(h, w, m), 3), "seconds": round(statistics.median(seconds[m]), 3)}
            for m in margins}
        print(method, json.dumps(report["methods"][method]), file=sys.stderr, flush=True)  # type: ignore[index]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
