"""Export AdaIN's engines to ONNX for the CLI's torch-free path (:mod:`stylizer.onnx_engine` runs them).

Each engine becomes two graphs with the same interface: ``style.onnx`` (a style picture -> the statistics the
engine's torch code would measure) and ``stylize.onnx`` (content, those statistics, ``alpha`` -> the picture in
[0, 1]). The teacher's style graph measures the channel correlation, and its stylize graph takes correlated AdaIN's
mixing (its root, and the weight) instead, which :mod:`stylizer.correlation` derives in between (an
eigendecomposition: no ONNX operator).
Both are traced here from the very modules the torch engines run, so the two paths cannot drift apart.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .adain import encoder, load_decoder, style_stats
from .features import stylize_features
from .manifest import Manifest
from .onnx_engine import (
    EXPORT_VERSION,
    STYLE_GRAPH,
    STYLE_INT8_GRAPH,
    STYLIZE_GRAPH,
    STYLIZE_INT8_GRAPH,
    cache_dir,
    export_dir,
)
from .quantize import ENCODER_CONVS, quantize_graph, read_calibration
from .student import Student, load_student
from .vgg import get_vgg


class _StudentStyle(nn.Module):
    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.student.style_stats(style)


class _StudentStylize(nn.Module):
    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, content: torch.Tensor, *stats_and_alpha: torch.Tensor) -> torch.Tensor:
        *stats, alpha = stats_and_alpha
        return self.student(content, *stats, alpha=alpha).clamp(0, 1)  # type: ignore[arg-type]


class _TeacherStyle(nn.Module):
    """VGG-19's relu4_1 mean/std/correlation of a style picture (:func:`stylizer.adain.style_stats`)."""

    def __init__(self) -> None:
        super().__init__()
        self.vgg = get_vgg("cpu")

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return style_stats(self.vgg, style)


class _TeacherStylize(nn.Module):
    """VGG-19 to relu4_1, correlated AdaIN (``root`` at weight ``correlation``; 0 is plain AdaIN) at ``alpha``, our
    decoder (the ``vgg`` engine's ``stylize_batch``)."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder("cpu"), load_decoder(manifest, "cpu")

    def forward(self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, root: torch.Tensor,
                correlation: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        t = stylize_features(self.encoder(content), mean, std, alpha, root, correlation)  # type: ignore[arg-type]
        return self.decoder(t).clamp(0, 1)


def _graphs(manifest: Manifest, engine: str,
            ) -> tuple[nn.Module, nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    """(style graph, stylize graph, a sample of the stylize graph's statistics, the style graph's output names,
    the stylize graph's statistics' names) of ``engine``."""
    if engine == "student":
        student = load_student(manifest)
        stats = student.style_stats(torch.rand(1, 3, 64, 96))
        names = ["mean", "std", "color_mean", "color_cov"][:len(stats)]
        return _StudentStyle(student), _StudentStylize(student), stats, names, names
    if engine == "vgg":
        style = _TeacherStyle()
        mean, std, correlation = style(torch.rand(1, 3, 64, 96))
        return (style, _TeacherStylize(manifest), (mean, std, correlation[0], torch.tensor(0.5)),
                ["mean", "std", "correlation"], ["mean", "std", "root", "weight"])
    raise ValueError(f"unknown engine {engine!r}")


def export_onnx(manifest: Manifest, engine: str) -> Path:
    """Write the manifest ``engine``'s two ONNX graphs into their cache folder (:func:`export_dir`); returns it.

    Traced with the legacy TorchScript exporter at ``alpha = 0.5``, so the graph holds the interpolating branch of
    AdaIN (and of the student's recolouring), which at ``alpha = 1`` gives the same picture. Written to a temporary
    folder first and renamed, so a concurrent run never reads half a graph.
    """
    folder = export_dir(manifest, engine)
    style_graph, stylize_graph, stats, style_names, stats_names = _graphs(manifest, engine)
    picture = {0: "n", 2: "h", 3: "w"}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on the alpha branches, meant as above
            torch.onnx.export(style_graph, (torch.rand(1, 3, 64, 96),), str(tmp / STYLE_GRAPH),
                              input_names=["style"], output_names=style_names, dynamic_axes={"style": picture},
                              opset_version=17, dynamo=False)
            torch.onnx.export(stylize_graph, (torch.rand(1, 3, 72, 104), *stats, torch.tensor(0.5)),
                              str(tmp / STYLIZE_GRAPH), input_names=["content", *stats_names, "alpha"],
                              output_names=["picture"], dynamic_axes={"content": picture, "picture": picture},
                              opset_version=17, dynamo=False)
        if engine == "vgg":  # the int8 graph for CPUs without AMX, when ranges were calibrated for this decoder
            entry = manifest.model("adain_decoder")
            calibration = read_calibration(entry.file.parent, entry.sha256)
            if calibration is not None:
                ranges, means = calibration
                quantize_graph(tmp / STYLIZE_GRAPH, tmp / STYLIZE_INT8_GRAPH, ranges, means=means)
                quantize_graph(tmp / STYLE_GRAPH, tmp / STYLE_INT8_GRAPH, ranges[:ENCODER_CONVS],
                               means=None if means is None else means[:ENCODER_CONVS])
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_stale_exports(folder)
    return folder


def prune_stale_exports(current: Path | None = None) -> list[Path]:
    """Delete the exports older code wrote (a lower version than :data:`EXPORT_VERSION`, any engine): no version of
    this code reads them again, and each teacher export is ~50 MB. With ``current`` (an export just written), also
    the same weights' exports with other int8 ranges (:func:`export_dir`'s names: model, weights, ranges, version):
    a recalibration replaced them. OpenVINO's compiled copies go with them (its cache is keyed by graph contents,
    not by folder; what is still current compiles again once, ~1 s). Returns the folders deleted."""
    keep = current.name if current is not None else ""
    weights = keep.split("-")[:2] if keep else None
    stale = []
    for path in (cache_dir() / "onnx").glob("*-v*"):
        version = path.name.rpartition("-v")[2]
        replaced = weights is not None and path.name != keep and path.name.split("-")[:2] == weights
        if path.is_dir() and version.isdigit() and (int(version) < EXPORT_VERSION or replaced):
            shutil.rmtree(path, ignore_errors=True)
            stale.append(path)
    if stale:
        shutil.rmtree(cache_dir() / "openvino", ignore_errors=True)
    return stale
