"""Training presets: Johnson nets, the shared CIN net, and new CIN styles on a frozen net.

Three jobs, one optimiser set-up (:func:`_optimise`) on the trainers' shared :class:`~stylizer.train.loop.Loop`:

* ``johnson``: a whole :class:`~stylizer.transformer.TransformerNet` for one painting;
* ``cin`` with several styles (:func:`train_cin_base`): the shared conditional net and one
  ``(gamma, beta)`` row per painting, every batch sample drawn with a random style (Dumoulin et al.);
* ``cin`` with one style (:func:`fit_cin_style`): only a new row on the frozen shared net, about
  600 numbers, so it converges in minutes on a GPU and is feasible on a CPU; nothing else changes.

Every job stops at ``steps`` or ``max_minutes`` (whichever first), saves its weights periodically and
at the end (a killed run keeps its last checkpoint), reports progress and honours a cancel event.
Every ``HOLDOUT_EVERY``-th content photo (sorted by name) is never trained on: the benchmarks measure
quality on those.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .. import image as img
from ..cin import BASE_SHA_KEY, DEFAULT_BASE, base_name, load_base, load_rows
from ..device import autocast, resolve_device
from ..errors import Cancelled, StylizerError
from ..johnson import load_net
from ..losses import LossWeights, PerceptualLoss
from ..manifest import WEIGHTS_DIR, Manifest, ModelEntry, Preset, save_tensors, sha256_file, write_preset_manifest
from ..methods import Progress, ProgressFn
from ..transformer import CIN_ARCH, JOHNSON_ARCH, TransformerNet
from ..vgg import get_vgg
from .data import ImageFolderDataset, infinite_batches, split_content
from .loop import Loop

log = logging.getLogger(__name__)

THUMB_SIZE = 256


@dataclass
class TrainConfig:
    """Knobs shared by the three training jobs; ``steps=None`` picks the job's default."""

    steps: int | None = None
    size: int = 256  # square crop side of content photos
    style_size: int | None = None  # long side of the style image (default 2 x size)
    batch: int | None = None  # default 8 on CUDA, 2 on CPU
    lr: float | None = None
    weights: LossWeights = field(default_factory=LossWeights)
    max_minutes: float | None = None
    seed: int = 0
    workers: int = 0
    save_every: int = 500
    log_every: int = 50


def _content_batches(content_dir: Path, cfg: TrainConfig, batch: int, device: torch.device) -> Iterator[torch.Tensor]:
    dataset = ImageFolderDataset(content_dir, crop=cfg.size, size=cfg.size)
    dataset.paths, _ = split_content(content_dir)
    return infinite_batches(dataset, batch, workers=cfg.workers, device=device, seed=cfg.seed)


def _style_tensor(style: img.ImageSource, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    pil = img.load_image(style)
    return img.pil_to_tensor(img.resize_long_side(pil, cfg.style_size or 2 * cfg.size), device)


def _source_name(style: img.ImageSource) -> str:
    return Path(style).name if isinstance(style, str | Path) else ""


def _optimise(
    params: Sequence[nn.Parameter],
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    loss_fn: PerceptualLoss,
    batches: Iterator[torch.Tensor],
    *,
    steps: int,
    lr: float,
    cfg: TrainConfig,
    device: torch.device,
    save: Callable[[int], None],
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    tag: str,
    stats: dict[str, float] | None = None,
) -> dict[str, float]:
    """Adam over ``params`` on the shared :class:`~stylizer.train.loop.Loop`; the lr decays (cosine) to 10 % over
    ``steps``. Run statistics (steps, seconds, first/last/smoothed loss) are kept up to date in ``stats`` after
    every step, so each ``save`` (the loop's last one included) records them; returns them."""
    opt = torch.optim.Adam(params, lr=lr)
    stats = {} if stats is None else stats
    t0 = time.perf_counter()

    def step_fn(i: int) -> dict[str, torch.Tensor]:
        if cancel is not None and cancel.is_set():
            raise Cancelled("training cancelled")
        for group in opt.param_groups:
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / max(1, steps))))
        content = next(batches)
        with autocast(device):
            out, style_index = forward(content)
            loss, parts = loss_fn(out, content, style_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach())
        stats.update(steps=i + 1, seconds=round(time.perf_counter() - t0, 1), last_loss=last,
                     first_loss=stats.get("first_loss", last),
                     avg_loss=0.95 * stats["avg_loss"] + 0.05 * last if "avg_loss" in stats else last)
        if progress is not None:
            progress(Progress("train", i + 1, steps, last))
        return {"loss": loss.detach(), **parts}

    loop = Loop(tag, steps=steps, max_minutes=cfg.max_minutes, log_every=cfg.log_every,
                checkpoint_minutes=math.inf, checkpoint_every=cfg.save_every)
    loop.run(step_fn, 0, save)
    return stats


def _metadata(method: str, arch_json: str, cfg: TrainConfig, device: torch.device, stats: dict, **extra) -> dict:
    info = {"steps": stats["steps"], "seconds": stats["seconds"], "size": cfg.size, "device": device.type,
            "loss": round(stats["avg_loss"], 5), "weights": json.dumps(asdict(cfg.weights))}
    return {"method": method, "arch": arch_json, "train": json.dumps({**info, **extra})}


def _default(cfg: TrainConfig, device: torch.device, steps: tuple[int, int], lr: float) -> tuple[int, int, float]:
    """(steps, batch, lr) with the job's defaults for GPU and CPU runs."""
    cuda = device.type == "cuda"
    return (cfg.steps or (steps[0] if cuda else steps[1]), cfg.batch or (8 if cuda else 2), cfg.lr or lr)


def _prepare(device: torch.device, cfg: TrainConfig):
    torch.manual_seed(cfg.seed)
    vgg = get_vgg(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return vgg


def johnson_init(preset: Preset, manifest: Manifest) -> TransformerNet:
    """A trainable Johnson net that starts where ``preset`` stands (float32, on the CPU).

    A Johnson preset is continued as it is. A CIN preset becomes its base net with the preset's
    ``(gamma, beta)`` row written into ordinary affine norms: the same function, and the same size and
    speed as the CIN net, but now every weight can move for this one style. That is the step past the
    shared base's capacity when a row alone cannot hold a painting on held-out photos (issue 15).
    """
    if preset.method == "johnson":
        return load_net(preset).float().requires_grad_(True)
    if preset.method != "cin":
        raise StylizerError(f"cannot start a Johnson net from a {preset.method} preset")
    base = load_base(manifest.model(base_name(preset)))
    rows = load_rows(preset, base)
    net = TransformerNet(base.net.arch)
    tensors = dict(base.net.state_dict())
    for i in range(len(net.norms)):
        tensors[f"norms.{i}.weight"], tensors[f"norms.{i}.bias"] = rows[f"gamma.{i}"], rows[f"beta.{i}"]
    net.load_state_dict(tensors)
    return net.float()


def train_johnson(style: img.ImageSource, out_file: Path, content_dir: Path, cfg: TrainConfig | None = None,
                  device: str | torch.device = "auto", progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None, init: TransformerNet | None = None) -> dict[str, float]:
    """Train a Johnson net for one painting into ``out_file`` (fp16 safetensors); returns run statistics.

    ``init`` (see :func:`johnson_init`) fine-tunes a net that already renders a close style, with a
    lower default learning rate, instead of training one from random weights.
    """
    cfg = cfg or TrainConfig()
    dev = resolve_device(device)
    vgg = _prepare(dev, cfg)
    steps, batch, lr = _default(cfg, dev, (4000, 300), 1e-3 if init is None else 2e-4)
    loss_fn = PerceptualLoss(vgg, [_style_tensor(style, cfg, dev)], cfg.weights)
    net = (init if init is not None else TransformerNet(JOHNSON_ARCH)).to(dev).train()
    batches = _content_batches(content_dir, cfg, batch, dev)
    stats: dict[str, float] = {}

    def save(step: int) -> None:
        stats_now = {"steps": step, "seconds": 0.0, "avg_loss": float("nan"), **stats}
        save_tensors(net.state_dict(), out_file,
                     _metadata("johnson", net.arch.to_json(), cfg, dev, stats_now, style=_source_name(style)))

    _optimise(list(net.parameters()), lambda x: (net(x), None), loss_fn, batches, steps=steps, lr=lr, cfg=cfg,
              device=dev, save=save, progress=progress, cancel=cancel, tag=f"johnson {out_file.stem}", stats=stats)
    return stats


class _StyleTable(nn.Module):
    """Trainable (gamma, beta) rows: one row per style for each norm layer of a conditional net."""

    def __init__(self, widths: Sequence[int], n_styles: int, init: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.gamma = nn.ParameterList()
        self.beta = nn.ParameterList()
        for i, c in enumerate(widths):
            g0 = init[f"gamma.{i}"] if init else torch.ones(c)
            b0 = init[f"beta.{i}"] if init else torch.zeros(c)
            self.gamma.append(nn.Parameter(g0.float().reshape(1, c).repeat(n_styles, 1).clone()))
            self.beta.append(nn.Parameter(b0.float().reshape(1, c).repeat(n_styles, 1).clone()))

    def params_for(self, index: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(g[index], b[index]) for g, b in zip(self.gamma, self.beta, strict=True)]

    def row(self, k: int) -> dict[str, torch.Tensor]:
        out = {f"gamma.{i}": g[k].detach() for i, g in enumerate(self.gamma)}
        out.update({f"beta.{i}": b[k].detach() for i, b in enumerate(self.beta)})
        return out

    def mean_row(self) -> dict[str, torch.Tensor]:
        out = {f"gamma.{i}": g.detach().mean(0) for i, g in enumerate(self.gamma)}
        out.update({f"beta.{i}": b.detach().mean(0) for i, b in enumerate(self.beta)})
        return out


def _save_row(table: _StyleTable, k: int, path: Path, base_sha: str, meta: dict[str, str]) -> str:
    return save_tensors(table.row(k), path, {**meta, BASE_SHA_KEY: base_sha})


def train_cin_base(styles: Sequence[tuple[str, img.ImageSource]], out_dir: Path, content_dir: Path,
                   cfg: TrainConfig | None = None, device: str | torch.device = "auto",
                   progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                   base: str = DEFAULT_BASE) -> tuple[Path, dict[str, Path], dict[str, float]]:
    """Train the shared CIN net on several paintings: writes ``{base}.safetensors`` and ``cin_{name}.safetensors``.

    Returns (base file, {name: row file}, run statistics). The row files record the base file's sha256.
    """
    cfg = cfg or TrainConfig()
    if len({n for n, _ in styles}) != len(styles) or not styles:
        raise StylizerError("CIN training needs at least one style and distinct names")
    dev = resolve_device(device)
    vgg = _prepare(dev, cfg)
    steps, batch, lr = _default(cfg, dev, (8000, 400), 1e-3)
    loss_fn = PerceptualLoss(vgg, [_style_tensor(s, cfg, dev) for _, s in styles], cfg.weights)
    net = TransformerNet(CIN_ARCH, conditional=True).to(dev).train()
    table = _StyleTable(net.norm_widths, len(styles)).to(dev)
    batches = _content_batches(content_dir, cfg, batch, dev)
    base_file = Path(out_dir) / f"{base}.safetensors"
    row_files = {name: Path(out_dir) / f"cin_{name}.safetensors" for name, _ in styles}
    stats: dict[str, float] = {}

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(styles), (x.shape[0],), device=dev)
        return net(x, table.params_for(index)), index

    def save(step: int) -> None:
        stats_now = {"steps": step, "seconds": 0.0, "avg_loss": float("nan"), **stats}
        tensors = dict(net.state_dict())
        tensors.update({f"init.{k}": v for k, v in table.mean_row().items()})
        meta = _metadata("cin", CIN_ARCH.to_json(), cfg, dev, stats_now, styles=[_source_name(s) for _, s in styles])
        sha = save_tensors(tensors, base_file, meta)
        for k, (name, style) in enumerate(styles):
            row_meta = _metadata("cin", CIN_ARCH.to_json(), cfg, dev, stats_now, style=_source_name(style), base=base)
            _save_row(table, k, row_files[name], sha, row_meta)

    _optimise([*net.parameters(), *table.parameters()], forward, loss_fn, batches, steps=steps, lr=lr, cfg=cfg,
              device=dev, save=save, progress=progress, cancel=cancel, tag="cin base", stats=stats)
    return base_file, row_files, stats


def fit_cin_style(style: img.ImageSource, base_entry: ModelEntry, out_file: Path, content_dir: Path,
                  cfg: TrainConfig | None = None, device: str | torch.device = "auto",
                  progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                  init: Preset | None = None) -> dict[str, float]:
    """Add one style to a trained CIN net: fit only its (gamma, beta) row; the base file is only read.

    The row starts from the base's mean row, or from ``init``'s row (a re-fit of an existing preset with
    other settings continues where that one stands instead of starting over).
    """
    cfg = cfg or TrainConfig()
    dev = resolve_device(device)
    vgg = _prepare(dev, cfg)
    steps, batch, lr = _default(cfg, dev, (1500, 200), 2e-2)
    base = load_base(base_entry, dev)
    net = base.net  # a private, frozen copy
    start = load_rows(init, base) if init is not None else base.init_rows
    table = _StyleTable(net.norm_widths, 1, start or None).to(dev)
    loss_fn = PerceptualLoss(vgg, [_style_tensor(style, cfg, dev)], cfg.weights)
    batches = _content_batches(content_dir, cfg, batch, dev)
    zero = torch.zeros(batch, dtype=torch.long, device=dev)
    stats: dict[str, float] = {}
    base_sha = base_entry.sha256 or sha256_file(base_entry.file)

    def save(step: int) -> None:
        stats_now = {"steps": step, "seconds": 0.0, "avg_loss": float("nan"), **stats}
        meta = _metadata("cin", net.arch.to_json(), cfg, dev, stats_now, style=_source_name(style),
                         base=base_entry.name)
        _save_row(table, 0, out_file, base_sha, meta)

    _optimise(list(table.parameters()), lambda x: (net(x, table.params_for(zero[: x.shape[0]])), None),
              loss_fn, batches, steps=steps, lr=lr, cfg=cfg, device=dev, save=save, progress=progress,
              cancel=cancel, tag=f"cin row {out_file.stem}", stats=stats)
    return stats


def make_thumbnail(preset: Preset, manifest: Manifest, sample: img.ImageSource, out_file: Path,
                   device: str | torch.device = "cpu") -> Path:
    """Render ``sample`` with the (draft) preset at THUMB_SIZE px into a small JPEG."""
    from ..facade import StyleRef, Stylizer, StylizeRequest

    result = Stylizer(manifest.with_presets(preset)).stylize(
        StylizeRequest(content=sample, styles=[StyleRef(preset=preset.name)], size=THUMB_SIZE, device=device))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    result.image.save(out_file, quality=85, optimize=True)
    return out_file


def _default_sample(content_dir: Path) -> Path | None:
    train, held = split_content(content_dir)
    return (held or train or [None])[0]


def train_preset(
    name: str,
    style: img.ImageSource,
    *,
    method: str = "cin",
    content_dir: Path | str,
    out_dir: Path | str,
    steps: int | None = None,
    size: int = 256,
    device: str = "auto",
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    display_name: str = "",
    manifest: Manifest | None = None,
    base: str = DEFAULT_BASE,
    sample: img.ImageSource | None = None,
    config: TrainConfig | None = None,
    init_from: str | None = None,
) -> Preset:
    """Train a preset from one style picture and return its draft :class:`Preset` (sha256 filled).

    ``cin`` fits a new row on the manifest's CIN base net (``base``), from the mean row or from the row of
    the preset ``init_from`` (a re-fit); ``johnson`` trains a whole net, from random weights or, with
    ``init_from``, from that preset's net (a CIN preset: its base with its row baked in, see :func:`johnson_init`).
    Weights go to ``out_dir/{method}_{name}.safetensors`` and a thumbnail (``sample``, default the first
    held-out photo of ``content_dir``, stylized at 256 px) to ``out_dir/thumbs/{name}.jpg``.
    Publishing the draft (adding it to a manifest) is the caller's decision.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise StylizerError(f"preset names are letters, digits, - and _ only, got {name!r}")
    manifest = manifest or Manifest.default()
    img.load_image(style)  # fail fast on an unusable style picture
    content_dir, out_dir = Path(content_dir), Path(out_dir)
    if not content_dir.is_dir():
        raise StylizerError(f"{content_dir}: not a folder")
    cfg = replace(config or TrainConfig(), steps=steps if steps is not None else (config.steps if config else None),
                  size=size)
    out_file = out_dir / f"{method}_{name}.safetensors"
    params: dict[str, str] = {}
    init = manifest.preset(init_from) if init_from else None
    if method == "johnson":
        train_johnson(style, out_file, content_dir, cfg, device, progress, cancel,
                      johnson_init(init, manifest) if init is not None else None)
    elif method == "cin":
        if init is not None and init.method != "cin":
            raise StylizerError(f"--init-from {init_from}: a {init.method} preset has no CIN row")
        fit_cin_style(style, manifest.model(base), out_file, content_dir, cfg, device, progress, cancel, init)
        params = {"base": base}
    else:
        raise StylizerError(f"presets are trained for cin or johnson, not {method!r}")
    preset = Preset(name=name, method=method, file=out_file, display_name=display_name,
                    sha256=sha256_file(out_file), source=_source_name(style), params=params)
    sample = sample if sample is not None else _default_sample(content_dir)
    if sample is not None:
        thumb = make_thumbnail(preset, manifest, sample, out_dir / "thumbs" / f"{name}.jpg")
        preset = replace(preset, thumbnail=thumb)
    return preset


# --- command line -------------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train-preset NAME --style IMG --method cin|johnson --content-dir D`` (+ ``--styles`` for the CIN base)."""
    p.add_argument("name", nargs="?", help="preset name (one style)")
    p.add_argument("--style", type=Path, help="style picture of the new preset")
    p.add_argument("--styles", nargs="+", type=Path,
                   help="cin only: train the shared CIN net on these paintings (one preset each)")
    p.add_argument("--names", nargs="+", help="preset names for --styles (default: file stems)")
    p.add_argument("--method", choices=["cin", "johnson"], default="cin")
    p.add_argument("--content-dir", type=Path, required=True, help="folder of content photos")
    p.add_argument("-o", "--out-dir", type=Path, default=WEIGHTS_DIR, help="where weights and thumbnails go")
    p.add_argument("--base", default=DEFAULT_BASE, help="name of the CIN base net (model in the manifest)")
    p.add_argument("--init-from", default=None, metavar="PRESET",
                   help="cin: start from this preset's row (re-fit it with other settings); johnson: start from "
                        "this preset's net (a cin preset: its base net with its row, then every weight trains)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--size", type=int, default=256, help="training crop size (default 256)")
    p.add_argument("--style-size", type=int, default=None, help="long side of style pictures (default 2 x size)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this wall time")
    p.add_argument("--content-weight", type=float, default=LossWeights.content)
    p.add_argument("--style-weight", type=float, default=LossWeights.style)
    p.add_argument("--moment-weight", type=float, default=LossWeights.moments)
    p.add_argument("--tv-weight", type=float, default=LossWeights.tv)
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--display-name", default="")
    p.add_argument("--sample", type=Path, default=None, help="photo for the thumbnail (default: a held-out one)")
    p.add_argument("--no-thumbnail", action="store_true")
    p.add_argument("--manifest", type=Path, default=None,
                   help="also add the presets to this presets-only manifest file (created if missing)")
    p.set_defaults(run=run_cli)


def _toml_block(presets: Sequence[Preset], where: Path) -> str:
    tmp = where / ".presets.toml.tmp"
    write_preset_manifest(tmp, presets)
    try:
        return tmp.read_text(encoding="utf-8")
    finally:
        tmp.unlink(missing_ok=True)


def run_cli(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        steps=args.steps, size=args.size, style_size=args.style_size, batch=args.batch, lr=args.lr,
        max_minutes=args.max_minutes, seed=args.seed, workers=args.workers,
        weights=LossWeights(content=args.content_weight, style=args.style_weight, moments=args.moment_weight,
                            tv=args.tv_weight),
    )
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.default()
    presets: list[Preset] = []
    if args.styles:
        if args.method != "cin" or args.style or args.name:
            raise StylizerError("--styles trains the shared CIN net: use it with --method cin, without NAME/--style")
        names = args.names or [p.stem for p in args.styles]
        if len(names) != len(args.styles):
            raise StylizerError(f"--names gives {len(names)} names for {len(args.styles)} styles")
        base_file, rows, stats = train_cin_base(list(zip(names, args.styles, strict=True)), out_dir,
                                                args.content_dir, cfg, args.device, base=args.base)
        print(f"[models.{args.base}]\nfile = \"{base_file.name}\"\nsha256 = \"{sha256_file(base_file)}\"\n"
              f"info = \"{stats['steps']} steps at {cfg.size} px on {resolve_device(args.device).type}, "
              f"{stats['seconds']:.0f} s\"\n")
        entry = ModelEntry(args.base, base_file, sha256_file(base_file))
        manifest.models[args.base] = entry
        for name, style in zip(names, args.styles, strict=True):
            preset = Preset(name=name, method="cin", file=rows[name], sha256=sha256_file(rows[name]),
                            source=style.name, params={"base": args.base})
            presets.append(preset)
    else:
        if not args.name or not args.style:
            raise StylizerError("train-preset needs NAME and --style IMAGE (or --styles for the CIN base net)")
        presets.append(train_preset(
            args.name, args.style, method=args.method, content_dir=args.content_dir, out_dir=out_dir,
            steps=args.steps, size=args.size, device=args.device, display_name=args.display_name,
            manifest=manifest, base=args.base, sample=args.sample, config=cfg,
            progress=None, init_from=args.init_from))
    if not args.no_thumbnail:
        sample = args.sample or _default_sample(args.content_dir)
        for i, preset in enumerate(presets):
            if preset.thumbnail is None and sample is not None:
                thumb = make_thumbnail(preset, manifest, sample, out_dir / "thumbs" / f"{preset.name}.jpg")
                presets[i] = replace(preset, thumbnail=thumb)
    if args.manifest:
        existing = Manifest([args.manifest]).presets if args.manifest.is_file() else {}
        merged = {**existing, **{p.name: p for p in presets}}
        write_preset_manifest(args.manifest, merged.values())
    print(_toml_block(presets, out_dir))
    return 0
