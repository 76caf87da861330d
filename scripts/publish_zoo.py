"""Publish gated zoo rows: copy each row into weights/, render its thumbnail, add its manifest entry.

    .venv/bin/python scripts/publish_zoo.py --gate GATE.json --from runs/zoo --style-weight 10 NAME ...

Only rows whose gate result (``bench/preset_quality.py --stress`` JSON) says ``passed`` and
``passed_stress`` are published; the entry records the source file, licence note, thumbnail, how the row
was trained (steps, style weight, time from its training log, device) and its gate figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo_manifest import zoo_table  # noqa: E402

from stylizer.manifest import Manifest, Preset, sha256_file  # noqa: E402
from stylizer.train.data import split_content  # noqa: E402
from stylizer.train.preset import make_thumbnail  # noqa: E402

WEIGHTS = ROOT / "weights"
#: where ../shared/data/SOURCES.md says each painting comes from
LICENCES = {
    "naoto0804": "artist's rights not recorded; image from naoto0804/pytorch-AdaIN input/style (MIT repository)",
    "neural-style": "image from jcjohnson/neural-style (MIT repository); see SOURCES.md for the painting",
    "lengstrom": "image from lengstrom/fast-style-transfer; see SOURCES.md for the painting",
    "adi1spock": "200x200 thumbnail from adi1spock/Neural.Style.Transfer.Integration.",
}
ORIGIN = {
    "afremov_rain_princess.jpg": "lengstrom", "escher_sphere.jpg": "neural-style", "kahlo_self_portrait.jpg":
    "neural-style", "picasso_self_portrait_1907.jpg": "neural-style", "feathers_thumb.jpg": "adi1spock",
}


def _info(log: Path, steps: int, style_weight: float, method: str = "cin", start: str = "") -> str:
    stamps = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in log.read_text().splitlines()
              if re.match(r"\d{4}-\d\d-\d\d ", line)]
    seconds = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0
    what = ("add-a-style row on the frozen cin_base" if method == "cin" else
            f"Johnson net of the CIN base's size, every weight fine-tuned (train-preset --method johnson "
            f"--init-from) from {start or 'a CIN draft row'}")
    return (f"{what}: {steps} steps, style weight {style_weight:g}; batch 2, 256 px crops, style long side 512, "
            f"cpu (2-core AMD EPYC, bf16 autocast), {seconds:.0f} s (shared with other jobs)")


def _quality(q: dict) -> str:
    return (f"512 px, 10 held-out photos + grey/dark/vivid/hazy variants (bench/preset_quality.py --stress): "
            f"median content_err {q['content_err']}, style_gap {q['style_gap']}; worst held-out photo style_gap "
            f"{q['plain_max_style_gap']}, content_err {q['plain_max_content_err']}; worst variant "
            f"{q['max_style_gap']} / {q['max_content_err']}")


def _toml(preset: Preset, licence: str, info: str, quality: str) -> str:
    def s(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)

    params = "".join(f"{k} = {s(str(v))}\n" for k, v in preset.params.items())
    return (f'\n[[presets]]\nname = {s(preset.name)}\ndisplay_name = {s(preset.display_name)}\n'
            f'method = {s(preset.method)}\nfile = {s(preset.file.name)}\nsha256 = {s(preset.sha256)}\n'
            f'source = {s(preset.source)}\nlicence = {s(licence)}\nthumbnail = {s("thumbs/" + preset.name + ".jpg")}\n'
            f'enabled = true\ninfo = {s(info)}\nquality = {s(quality)}\n'
            + (f"[presets.params]\n{params}" if params else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+")
    ap.add_argument("--gate", type=Path, nargs="+", required=True)
    ap.add_argument("--from", dest="source", type=Path, default=ROOT / "runs" / "zoo")
    ap.add_argument("--style-weight", type=float, required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--content-dir", type=Path, default=ROOT / ".data" / "content")
    ap.add_argument("--log", type=Path, default=None, help="training log (default FROM/NAME.log)")
    ap.add_argument("--start", default="", help="johnson: what the fine-tune started from (for the record)")
    args = ap.parse_args()
    gate: dict = {}
    for file in args.gate:
        data = json.loads(file.read_text())
        gate.update(data.get("presets", data))
    drafts = Manifest([WEIGHTS / "manifest.toml", args.source / "presets.toml"])
    shipped = Manifest([WEIGHTS / "manifest.toml"]).presets
    sample = split_content(args.content_dir)[1][0]
    text = (WEIGHTS / "manifest.toml").read_text()
    displays = {n: d for n, _, d in zoo_table()}  # drafts from train-preset --manifest carry no display name
    for name in args.names:
        q = gate.get(name)
        if not q or not (q.get("passed") and q.get("passed_stress")):
            print(f"skip {name}: gate {'missing' if not q else 'failed'}", file=sys.stderr)
            continue
        if name in shipped:
            print(f"skip {name}: already in weights/manifest.toml", file=sys.stderr)
            continue
        draft = drafts.preset(name)
        target = WEIGHTS / draft.file.name
        target.write_bytes(draft.file.read_bytes())
        display = draft.display_name or displays.get(name, name)
        preset = Preset(name=name, method=draft.method, file=target, sha256=sha256_file(target),
                        display_name=display, source=draft.source, params=dict(draft.params))
        make_thumbnail(preset, drafts, sample, WEIGHTS / "thumbs" / f"{name}.jpg")
        licence = LICENCES[ORIGIN.get(preset.source or "", "naoto0804")]
        info = _info(args.log or args.source / f"{name}.log", args.steps, args.style_weight, preset.method, args.start)
        text += _toml(preset, licence, info, _quality(q))
        print(f"published {name}", file=sys.stderr)
    (WEIGHTS / "manifest.toml").write_text(text)


if __name__ == "__main__":
    main()
