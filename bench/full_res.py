"""Full resolution tiled vs untiled: seconds and peak memory of one process per run, as JSON.

    python bench/full_res.py [--size 4096x2730] [--methods cin adain] [--tile 1024]

Each (method, tile) runs in a fresh subprocess so ``ru_maxrss`` is that run's peak; tile 0 is untiled.
The photo is a held-out ``../shared`` one (every 100th content photo) resized to ``--size``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLEBOT_SHARED", ROOT.parent / "shared"))

ONE = """
import json, resource, sys, time
from PIL import Image
from stylizer.facade import Stylizer, StylizeRequest, StyleRef
method, photo, style = sys.argv[1], sys.argv[5], sys.argv[6]
tile, w, h = (int(v) for v in sys.argv[2:5])
content = Image.open(photo).convert("RGB").resize((w, h))
styles = [StyleRef(preset="starry_night")] if method == "cin" else [StyleRef(image=style)]
t = time.perf_counter()
r = Stylizer().stylize(StylizeRequest(content=content, styles=styles, method=method, size=max(w, h), tile=tile,
                                      device="cpu"))
print(json.dumps({"method": method, "tile": tile, "size": r.size, "seconds": round(time.perf_counter() - t, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4096x2730")
    ap.add_argument("--methods", nargs="+", default=["cin", "adain"])
    ap.add_argument("--tile", type=int, default=1024)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    photo = sorted((SHARED / "data" / "content").iterdir())[100]
    style = sorted((SHARED / "data" / "styles").iterdir())[3]
    runs = []
    for method in args.methods:
        for tile in (0, args.tile):
            out = subprocess.run([sys.executable, "-c", ONE, method, str(tile), str(w), str(h), str(photo), str(style)],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], file=sys.stderr)
    print(json.dumps({"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
