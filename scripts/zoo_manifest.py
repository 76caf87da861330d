"""Write runs/zoo/presets.toml for every row scripts/train_zoo has finished (all disabled until gated).

    .venv/bin/python scripts/zoo_manifest.py [OUT (default runs/zoo)]

Reads the name | file | display name table from scripts/train_zoo, so the queue and the manifest
cannot drift apart; rows whose weights are missing are skipped. bench/preset_quality.py --all gates
them; publishing one means copying its entry (and file) into weights/.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylizer.manifest import Preset, sha256_file, write_preset_manifest  # noqa: E402


def zoo_table() -> list[tuple[str, str, str]]:
    text = (ROOT / "scripts" / "train_zoo").read_text()
    block = re.search(r'ZOO="(.*?)"', text, re.S)
    assert block is not None
    return [tuple(line.split("|", 2)) for line in block.group(1).splitlines() if line.strip()]  # type: ignore[misc]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "zoo"
    presets = []
    for name, source, display in zoo_table():
        file = out / f"cin_{name}.safetensors"
        if file.is_file():
            presets.append(Preset(name=name, method="cin", file=file, sha256=sha256_file(file), display_name=display,
                                  source=source, enabled=False, params={"base": "cin_base"}))
    write_preset_manifest(out / "presets.toml", presets)
    print(f"{len(presets)} rows in {out / 'presets.toml'}")


if __name__ == "__main__":
    main()
