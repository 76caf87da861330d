"""``cin``: one feed-forward net for many presets via conditional instance norm (Dumoulin et al. 2017).

Files: a shared base net (``[models.cin_base]``: the convolutions, plus "init" rows = the mean of the
styles it was trained on, used to start fitting a new style) and one small file per preset holding
its ``gamma.{i}`` / ``beta.{i}`` rows (one per norm layer, a few KB). A preset names its base in
``params.base``, so adding a preset fits one new row and never rewrites any other file. Each row file
records the sha256 of the base it was fitted to: rows are meaningless for any other base, and a
mismatch is reported as a :class:`~stylizer.errors.PresetError`, not as a garbled picture.

Mixing presets is a weighted sum of their rows (the paper's "style interpolation"); strength is a
pixel blend with the content photo, which users read more predictably than interpolating the rows
toward the base's average style.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MethodError, PresetError
from .image import blend
from .manifest import Manifest, ModelEntry, Preset, load_tensors, read_metadata
from .methods import MethodJob
from .transformer import CIN_ARCH, TransformerNet, build_net, inference_dtype, style_from_rows

DEFAULT_BASE = "cin_base"
#: Metadata key in a preset row file: sha256 of the base file the rows were fitted to.
BASE_SHA_KEY = "base_sha256"


@dataclass
class CINBase:
    """The shared conditional net and the rows new styles start from."""

    net: TransformerNet
    init_rows: dict[str, torch.Tensor]
    sha256: str


def base_name(preset: Preset) -> str:
    return str(preset.params.get("base", DEFAULT_BASE))


def load_base(entry: ModelEntry, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> CINBase:
    """Read and verify a base file into a fresh (uncached, frozen) net; use :func:`cached_base` to share."""
    what = f"CIN base {entry.name!r}"
    tensors = load_tensors(entry.file, entry.sha256, what)
    try:
        net = build_net(tensors, read_metadata(entry.file, what), CIN_ARCH, conditional=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise PresetError(f"{what}: {entry.file.name} does not hold a CIN net ({exc})") from exc
    init = {k.removeprefix("init."): v for k, v in tensors.items() if k.startswith("init.")}
    with torch.inference_mode(False):
        net = net.to(device=device, dtype=dtype)
    return CINBase(net, init, entry.sha256)


_lock = threading.Lock()
_bases: dict[tuple[Path, str, str, torch.dtype], CINBase] = {}
_rows: dict[tuple[Path, str], tuple[dict[str, torch.Tensor], dict[str, str]]] = {}


def cached_base(entry: ModelEntry, device: torch.device, dtype: torch.dtype) -> CINBase:
    """The base net per (file, hash, device, dtype), loaded once and shared by all worker threads."""
    key = (entry.file, entry.sha256, str(device), dtype)
    with _lock:
        if key not in _bases:
            _bases[key] = load_base(entry, device, dtype)
        return _bases[key]


def load_rows(preset: Preset, base: CINBase | None = None) -> dict[str, torch.Tensor]:
    """A preset's ``gamma.{i}``/``beta.{i}`` rows (C,) as float32 on the CPU, checked against ``base``."""
    what = f"preset {preset.name!r}"
    key = (preset.file, preset.sha256)
    with _lock:
        cached = _rows.get(key)
    if cached is None:
        tensors = load_tensors(preset.file, preset.sha256, what)
        rows = {k: v for k, v in tensors.items() if k.startswith(("gamma.", "beta."))}
        cached = (rows, read_metadata(preset.file, what))
        with _lock:
            _rows[key] = cached
    rows, meta = cached
    if base is not None:
        fitted_to = meta.get(BASE_SHA_KEY, "")
        if fitted_to and base.sha256 and fitted_to != base.sha256:
            raise PresetError(f"{what} was fitted to another CIN base net (base sha256 {fitted_to[:12]}...)")
        for i, width in enumerate(base.net.norm_widths):
            for kind in ("gamma", "beta"):
                row = rows.get(f"{kind}.{i}")
                if row is None or row.numel() != width:
                    raise PresetError(f"{what}: {preset.file.name} does not match its CIN base net")
    return rows


def mix_rows(rows: list[dict[str, torch.Tensor]], weights: list[float], n_layers: int,
             device: torch.device, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Weighted sum of several presets' rows -> one (1, C) (gamma, beta) pair per norm layer."""
    stacked = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    w = torch.tensor(weights, dtype=torch.float32)
    w = w / w.sum()
    return [(g.to(device, dtype), b.to(device, dtype)) for g, b in style_from_rows(stacked, n_layers, w)]


class CINMethod:
    name = "cin"
    description = "fast presets from one shared net (conditional instance norm); presets can be mixed"
    accepts_images = False
    slow = False
    #: normalises through stylizer.features, so full resolution can run tile by tile (stylizer.tiling)
    tileable = True
    #: presets are rows of one net: any of them mix by a weighted sum of rows
    mixes_presets = True

    def available(self, manifest: Manifest) -> bool:
        return any(
            p.method == self.name and p.file.is_file() and base_name(p) in manifest.models
            for p in manifest.enabled_presets()
        )

    def _base_and_rows(self, job: MethodJob) -> tuple[CINBase, list[dict[str, torch.Tensor]], torch.dtype]:
        """The shared base net (cached, in the inference dtype) and each style's rows, checked to belong to it."""
        presets = []
        for s in job.styles:
            if s.preset is None:
                raise MethodError("cin only takes presets, not style images")
            if s.preset.method != self.name:
                raise MethodError(f"preset {s.preset.name!r} is a {s.preset.method} preset, not a cin one")
            presets.append(s.preset)
        bases = {base_name(p) for p in presets}
        if len(bases) > 1:
            raise MethodError(f"these presets belong to different CIN nets ({', '.join(sorted(bases))})")
        dtype = inference_dtype(job.device, job.mixed_precision)
        base = cached_base(job.manifest.model(bases.pop()), job.device, dtype)
        return base, [load_rows(p, base) for p in presets], dtype

    def _forward(self, job: MethodJob, base: CINBase, content: torch.Tensor,
                 style: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype) -> torch.Tensor:
        job.report("stylize", 0, 1)
        out = base.net(content.to(dtype), style).float()
        job.report("stylize", 1, 1)
        return blend(content, out, job.strength)

    def run(self, job: MethodJob) -> torch.Tensor:
        base, rows, dtype = self._base_and_rows(job)
        style = mix_rows(rows, [s.weight for s in job.styles], len(base.net.norms), job.device, dtype)
        return self._forward(job, base, job.content, style, dtype)

    def run_each(self, job: MethodJob) -> torch.Tensor:
        """One output per style (no mixing): the (1, 3, H, W) content in every preset of ``job.styles``.

        All presets of one base share the net, so they run as one batch with one (gamma, beta) row per
        sample: a contact sheet of every preset costs about one batched forward pass.
        """
        base, rows, dtype = self._base_and_rows(job)
        stacked = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        style = [(g.to(job.device, dtype), b.to(job.device, dtype))
                 for g, b in style_from_rows(stacked, len(base.net.norms))]
        return self._forward(job, base, job.content.expand(len(rows), -1, -1, -1), style, dtype)
