"""``johnson``: one feed-forward transformer net per style (Johnson, Alahi & Fei-Fei 2016).

Each preset file is a whole :class:`~stylizer.transformer.TransformerNet` (affine instance norms) with
its architecture in the file's metadata. Nets are cached per (file, hash, device, dtype). A net knows
one style, so mixing several Johnson presets blends their outputs by the weights (the best a
per-style net can do; CIN presets mix properly). Strength is a pixel blend with the content.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from .errors import MethodError, PresetError
from .image import blend
from .manifest import Manifest, Preset, load_tensors, read_metadata
from .methods import MethodJob
from .transformer import JOHNSON_ARCH, TransformerNet, build_net, inference_dtype

_lock = threading.Lock()
_nets: dict[tuple[Path, str, str, torch.dtype], TransformerNet] = {}


def load_net(preset: Preset, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             ) -> TransformerNet:
    """A fresh frozen net from a preset file; a wrong or damaged file is a PresetError."""
    what = f"preset {preset.name!r}"
    tensors = load_tensors(preset.file, preset.sha256, what)
    try:
        net = build_net(tensors, read_metadata(preset.file, what), JOHNSON_ARCH, conditional=False)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise PresetError(f"{what}: {preset.file.name} does not hold a Johnson net ({exc})") from exc
    with torch.inference_mode(False):
        return net.to(device=device, dtype=dtype)


def cached_net(preset: Preset, device: torch.device, dtype: torch.dtype) -> TransformerNet:
    key = (preset.file, preset.sha256, str(device), dtype)
    with _lock:
        if key not in _nets:
            _nets[key] = load_net(preset, device, dtype)
        return _nets[key]


class JohnsonMethod:
    name = "johnson"
    description = "fast presets, one trained network per style (Johnson et al.)"
    accepts_images = False
    slow = False
    #: normalises through stylizer.features, so full resolution can run tile by tile (stylizer.tiling)
    tileable = True

    def available(self, manifest: Manifest) -> bool:
        return any(p.method == self.name and p.file.is_file() for p in manifest.enabled_presets())

    def run(self, job: MethodJob) -> torch.Tensor:
        dtype = inference_dtype(job.device, job.mixed_precision)
        out: torch.Tensor | None = None
        total = len(job.styles)
        for i, s in enumerate(job.styles):
            if s.preset is None:
                raise MethodError("johnson only takes presets, not style images")
            if s.preset.method != self.name:
                raise MethodError(f"preset {s.preset.name!r} is a {s.preset.method} preset, not a johnson one")
            job.report("stylize", i, total)
            y = cached_net(s.preset, job.device, dtype)(job.content.to(dtype)).float()
            out = y * s.weight if out is None else out + y * s.weight
        job.report("stylize", total, total)
        assert out is not None  # the facade never sends an empty style list
        return blend(job.content, out, job.strength)
