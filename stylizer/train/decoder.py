"""Train the AdaIN decoder: ``python -m stylizer train-decoder --content-dir D --style-dir D -o FILE``.

The recipe of Huang & Belongie (2017) / naoto0804/pytorch-AdaIN: encode a content crop and a style
crop with the frozen VGG-19, build the AdaIN target ``t`` at relu4_1, decode it, and train the decoder
so that the output's relu4_1 equals ``t`` (content loss) while its channel mean/std at
relu1_1..relu4_1 equal the style's (style loss, weight ~10). Adam, lr 1e-4 with the reference's
inverse decay ``lr / (1 + decay * step)``.

Our VGG is the raw Caffe network, whose activations grow from ~20 (relu1_1) to ~550 (relu4_1) on
average; the reference used a *normalised* VGG. Dividing each layer by its mean activation
(:data:`~stylizer.vgg.LAYER_SCALE`, measured on the shared data) gives the layers the balance the paper's
weights were tuned for, so relu1_1 (colours, fine texture) is not drowned by relu4_1.

With only 37 paintings, strong style augmentation (:class:`~stylizer.train.data.StyleAugment`) keeps
the decoder general. ``--style-pool`` draws styles of every kind a user sends instead
(:class:`~stylizer.train.pool.StylePool`: paintings, procedural textures, photos, ``--extra-styles`` pictures; the
validation ones held out, and the held-out photos out of the contents too), and ``--from`` starts from a trained
decoder: how the shipped one was fine-tuned on the CPU so that its default strength holds on non-painting styles
as well (issue 11; ``--style-layers`` adds relu5_1, which the brief's style_gap also measures).

Training can stop itself by wall-clock time (``--max-minutes``), always saving
the final fp16 decoder, and resumes from full checkpoints (decoder, optimizer, step).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import torch

from ..adain import LOSS_LAYERS, Decoder, load_decoder_file
from ..device import autocast, resolve_device
from ..errors import StylizerError
from ..losses import adain_losses, adain_targets
from ..manifest import save_tensors
from ..vgg import STYLE_LAYERS, get_vgg
from .data import ImageFolderDataset, StyleAugment, infinite_batches, split_content
from .loop import DecoderConfig, Loop, lr_at, save_checkpoint, start_or_resume
from .pool import StylePool, pool_batches

log = logging.getLogger(__name__)
#: Besides every ``--checkpoint-every`` steps, a checkpoint at least this often: a killed CPU run loses little.
CHECKPOINT_MINUTES = 5.0


def decoder_losses(vgg, decoder: Decoder, content: torch.Tensor, style: torch.Tensor,
                   layers: tuple[str, ...] = LOSS_LAYERS, correlation: float = 0.0,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss, style loss at ``layers``) of one batch, with features divided by :data:`LAYER_SCALE`; the
    decoder's input is correlated AdaIN at ``correlation`` (0: plain)."""
    t, targets = adain_targets(vgg, content, style, layers, correlation)
    return adain_losses(vgg, decoder(t), t, targets)


def train_decoder(cfg: DecoderConfig) -> list[dict[str, float]]:
    """Train (or continue training) the decoder; writes ``cfg.output`` (fp16) and returns the loss log."""
    device = resolve_device(cfg.device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    memory_format = torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format
    vgg = get_vgg(device).to(memory_format=memory_format)
    decoder = Decoder() if cfg.init is None else load_decoder_file(cfg.init, "cpu").requires_grad_(True)
    decoder = decoder.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    checkpoint, step = start_or_resume(cfg, decoder, optimizer, device)

    contents = ImageFolderDataset(cfg.content_dir, crop=cfg.crop, size=cfg.size)
    style_seed = None if cfg.seed is None else cfg.seed + 1
    if cfg.style_pool:
        contents.paths = split_content(cfg.content_dir)[0]  # the held-out photos are the validation grid's
        pool = StylePool(cfg.style_dir, cfg.content_dir, cfg.crop, cfg.extra_styles)
        style_batches = pool_batches(pool, cfg.batch, style_seed, device)
        styles_seen = f"{len(pool.paintings)} paintings, textures, {len(pool.photos)} photos, {len(pool.extra)} extra"
    else:
        styles = ImageFolderDataset(cfg.style_dir, crop=cfg.crop, augment=StyleAugment(cfg.crop))
        style_batches = infinite_batches(styles, cfg.batch, cfg.workers, device, seed=style_seed)
        styles_seen = f"{len(styles)} paintings, augmented"
    content_batches = infinite_batches(contents, cfg.batch, cfg.workers, device, seed=cfg.seed)
    log.info("training the AdaIN decoder on %s: %d photos, styles: %s, batch %d, crop %d, %d steps%s",
             device, len(contents), styles_seen, cfg.batch, cfg.crop, cfg.steps,
             f", from {cfg.init}" if cfg.init else "")

    layers = cfg.style_layers or LOSS_LAYERS
    start = time.perf_counter()

    def step_fn(i: int) -> dict[str, torch.Tensor]:
        lr = lr_at(cfg, i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        content = next(content_batches).contiguous(memory_format=memory_format)
        style = next(style_batches).contiguous(memory_format=memory_format)
        with autocast(device, cfg.mixed_precision):
            loss_c, loss_s = decoder_losses(vgg, decoder, content, style, layers, cfg.correlation)
        loss = cfg.content_weight * loss_c + cfg.style_weight * loss_s
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "content": loss_c.detach(), "style": loss_s.detach()}

    def save(i: int) -> None:
        if cfg.checkpoint_every:  # 0 disables checkpoints
            save_checkpoint(checkpoint, decoder, optimizer, i, cfg=cfg)

    loop = Loop("decoder", steps=cfg.steps, max_minutes=cfg.max_minutes, log_every=cfg.log_every,
                checkpoint_minutes=CHECKPOINT_MINUTES if cfg.checkpoint_every else math.inf,
                checkpoint_every=cfg.checkpoint_every, log_file=Path(cfg.log_file) if cfg.log_file else None)
    step = loop.run(step_fn, step, save)
    history = loop.history
    minutes = (time.perf_counter() - start) / 60
    metadata = {
        "steps": str(step), "size": str(cfg.size), "crop": str(cfg.crop), "batch": str(cfg.batch),
        "style_weight": str(cfg.style_weight), "lr": str(cfg.lr), "device": str(device),
        "minutes": f"{minutes:.1f}",
        "data": f"{Path(cfg.content_dir).name} ({len(contents)} photos), {Path(cfg.style_dir).name} ({styles_seen})",
        "style_layers": ",".join(layers), "correlation": str(cfg.correlation),
    }
    if cfg.init is not None:
        metadata["from"] = Path(cfg.init).name
    if history:
        metadata.update(final_content_loss=f"{history[-1]['content']:.4f}",
                        final_style_loss=f"{history[-1]['style']:.4f}")
    state = {k: v.contiguous() for k, v in decoder.state_dict().items()}
    sha = save_tensors(state, cfg.output, metadata)
    log.info("saved decoder to %s (sha256 %s) after %d steps, %.1f min", cfg.output, sha, step, minutes)
    return history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train-decoder`` subcommand (plugged into the CLI)."""
    d = DecoderConfig
    parser.add_argument("--content-dir", type=Path, required=True, help="folder of content photos")
    parser.add_argument("--style-dir", type=Path, required=True, help="folder of style paintings")
    parser.add_argument("-o", "--output", type=Path, required=True, help="decoder .safetensors to write (fp16)")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default {d.steps})")
    parser.add_argument("--size", type=int, default=d.size, help="content short side before cropping")
    parser.add_argument("--crop", type=int, default=d.crop, help="crop side for content and style")
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--lr-decay", type=float, default=d.lr_decay, help="lr / (1 + decay * step)")
    parser.add_argument("--style-weight", type=float, default=d.style_weight)
    parser.add_argument("--content-weight", type=float, default=d.content_weight)
    parser.add_argument("--device", default=d.device, help="auto | cpu | cuda")
    parser.add_argument("--workers", type=int, default=d.workers, help="data loader processes")
    parser.add_argument("--log-every", type=int, default=d.log_every)
    parser.add_argument("--log-file", type=Path, default=None, help="append the loss curve here (JSON lines)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default OUTPUT.ckpt)")
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="0 disables checkpoints")
    parser.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this long")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--fp32", action="store_true", help="disable bf16 autocast")
    parser.add_argument("--from", dest="init", type=Path, default=None,
                        help="fine-tune: start from this decoder file (e.g. weights/adain_decoder.safetensors)")
    parser.add_argument("--style-pool", action="store_true",
                        help="styles of every kind (paintings, textures, photos, --extra-styles), validation held out")
    parser.add_argument("--extra-styles", type=Path, default=None, help="more style pictures (scripts/pypi_styles)")
    parser.add_argument("--style-layers", default=",".join(LOSS_LAYERS),
                        help=f"style loss layers, comma separated (default the paper's; all: {','.join(STYLE_LAYERS)})")
    parser.add_argument("--correlation", type=float, default=d.correlation,
                        help="correlated AdaIN's weight in the decoder's input (0: plain AdaIN; the manifest's "
                             "`correlation` is what it runs with)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.batch < 1 or args.crop < 16:
        raise StylizerError("--steps and --batch must be positive and --crop at least 16")
    if not 0.0 <= args.correlation <= 1.0:
        raise StylizerError("--correlation is a weight in [0, 1]")
    style_layers = tuple(x.strip() for x in args.style_layers.split(",") if x.strip())
    if set(style_layers) - set(STYLE_LAYERS) or "relu4_1" not in style_layers:
        raise StylizerError(f"--style-layers: choose among {', '.join(STYLE_LAYERS)}, relu4_1 included")
    logging.getLogger("stylizer").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common = dict(
        content_dir=args.content_dir, style_dir=args.style_dir, output=args.output, steps=args.steps,
        size=args.size, crop=args.crop, batch=args.batch, lr=args.lr, lr_decay=args.lr_decay,
        style_weight=args.style_weight, content_weight=args.content_weight, device=args.device,
        workers=args.workers, log_every=args.log_every, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume, max_minutes=args.max_minutes,
        seed=args.seed, mixed_precision=not args.fp32, log_file=args.log_file, init=args.init,
        style_pool=args.style_pool, extra_styles=args.extra_styles,
        style_layers=style_layers, correlation=args.correlation,
    )
    train_decoder(DecoderConfig(**common))
    return 0
