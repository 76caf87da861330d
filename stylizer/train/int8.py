"""``python -m stylizer calibrate-int8``: the input range and channel means of every conv of the teacher's stylize
graph, measured once on training photos x styles of every kind (:class:`~stylizer.train.pool.StylePool`: paintings,
textures, PyPI pictures, photos; the encoder's means on the style pictures too, which the style graph measures),
then the int8 encoder validated layer by layer on held-out photos and held-out styles, with and without the bias
correction the means buy; all written to ``weights/int8_ranges.json`` (tied to the decoder's sha256), which
``export-onnx`` reads to write the int8 graphs (:mod:`stylizer.quantize`)."""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from .. import image as img
from ..adain import correlation_root, style_stats
from ..engines import correlation
from ..manifest import Manifest
from ..quantize import ENCODER_CONVS, QUANTILE, RANGES_NAME, SKIP_FIRST, SKIP_LAST, conv_input_stats, validate_encoder
from ..vgg import get_vgg
from .data import split_content, to_tensor
from .pool import StylePool

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content-dir", type=Path, required=True)
    p.add_argument("--style-dir", type=Path, required=True)
    p.add_argument("--extra-styles", type=Path, default=None)
    p.add_argument("--pairs", type=int, default=48, help="calibration pairs (training photos x pool styles)")
    p.add_argument("--size", type=int, default=512, help="long side of the calibration photos")
    p.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parents[2] / "weights" / RANGES_NAME)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_cli)


def _picture(path_or_image, size: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    pil = img.load_image(path_or_image) if isinstance(path_or_image, Path) else path_or_image
    return to_tensor(img.resize_long_side(pil.convert("RGB"), size))[None]


def run_cli(args: argparse.Namespace) -> int:
    from ..export import _TeacherStylize

    manifest = Manifest.default()
    rng = random.Random(args.seed)
    train, held = split_content(args.content_dir)
    pool = StylePool(args.style_dir, args.content_dir, 256, args.extra_styles)
    vgg = get_vgg("cpu")
    module = _TeacherStylize(manifest).eval()
    feeds, styles = [], []
    for _ in range(args.pairs):
        _kind, style = pool.sample(rng)
        with torch.no_grad():
            mean, std, correlation_ = style_stats(vgg, _picture(style, 256))
        mixing = correlation_root(correlation_), torch.tensor(correlation(manifest))
        feeds.append((_picture(rng.choice(train), args.size), mean, std, *mixing, torch.tensor(1.0)))
        styles.append((_picture(style, args.size),))
    ranges, means = conv_input_stats(module, feeds)
    # The encoder's convs also measure style pictures (the style graph): their bias correction is for both.
    _, style_means = conv_input_stats(module.encoder, styles)
    for i in range(ENCODER_CONVS):
        means[i] = [round((a + b) / 2, 5) for a, b in zip(means[i], style_means[i], strict=True)]
    log.info("ranges and means of %d convs from %d pairs", len(ranges), len(feeds))
    # layer by layer on pictures it never saw: held-out photos and the held-out styles of every kind
    checks = [_picture(p, args.size) for p in held[:6]]
    checks += [_picture(style, 256) for _, _, style in pool.validation_styles()]
    pictures = [c.numpy().astype(np.float32) for c in checks]
    figures = validate_encoder(ranges, pictures, means)
    uncorrected = validate_encoder(ranges, pictures)
    entry = manifest.model("adain_decoder")
    data = {"decoder_sha256": entry.sha256, "quantile": QUANTILE, "pairs": len(feeds), "size": args.size,
            "skip_first": SKIP_FIRST, "skip_last": SKIP_LAST,
            "command": "python -m stylizer calibrate-int8 --content-dir ../shared/data/content --style-dir "
                       "../shared/data/styles --extra-styles .data/pypi_styles",
            "validation": {"what": f"median relative error of channel mean/std, int8 vs fp32 encoder, on {len(checks)} "
                                   "held-out photos and held-out style pictures", "taps": figures,
                           "without_bias_correction": uncorrected},
            "ranges": ranges, "means": means}
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(figures))
    return 0
