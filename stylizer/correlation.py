"""Correlated AdaIN's channel mixing (:func:`stylizer.features.adain`), derived from a style's channel correlation.

Torch-free on purpose: the CLI's OpenVINO path (:mod:`stylizer.onnx_engine`) and the torch engine
(:mod:`stylizer.adain`) derive the mixing here from the same measured correlation (``style.onnx`` and
:func:`stylizer.features.channel_correlation`). The eigendecomposition it needs is not an ONNX operator, and it is
done once per style (a 512x512 ``eigh``, ~50 ms), never per content.

Why the square root: mixing content features ``z`` that were uncorrelated by ``R^(1/2)`` gives them the style's
correlation ``R`` (the colouring step of WCT, Li et al. 2017). Content features are not uncorrelated, and whitening
them would cost an eigendecomposition per picture, so the mixed features only take part of the way: ``(1 - w) z +
w norm(R^(1/2) z)``, with ``w`` calibrated per decoder (``correlation`` in its manifest entry,
:func:`stylizer.engines.correlation`).
"""

from __future__ import annotations

import numpy as np


def root(correlation: np.ndarray) -> np.ndarray:
    """The symmetric square root of a correlation matrix (C, C) (negative eigenvalues, rounding's, clipped)."""
    r = np.asarray(correlation, dtype=np.float64)
    r = (r + r.T) / 2
    values, vectors = np.linalg.eigh(r)
    return ((vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T).astype(np.float32)


def mixed_root(roots: list[tuple[float, np.ndarray | None]]) -> np.ndarray | None:
    """``sum_i w_i root_i`` for ``(w_i, root_i)`` (weights normalised here), several styles' mixing in one; a
    ``None`` root, a style measured before correlations were, counts as the identity (plain AdaIN). None when no
    root is known."""
    known = [r for _, r in roots if r is not None]
    if not known:
        return None
    eye = np.eye(known[0].shape[-1], dtype=np.float32)
    total = sum(w for w, _ in roots)
    return sum((w / total) * (eye if r is None else r) for w, r in roots).astype(np.float32)  # type: ignore[union-attr]
