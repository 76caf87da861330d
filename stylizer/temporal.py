"""Temporal coherence for video: keep the nets' sampling grid on the scene, then blend along the flow.

Stylizing each frame on its own flickers (measured on a slow pan: the frame-to-frame error after
undoing the motion is hundreds of times the input's). Two causes, two remedies:

1. **Grid phase.** The feed-forward nets downsample by 2 twice (VGG by 8), so they are equivariant only to
   shifts by multiples of 4 (8): a 4 px shift of the input moves the output by 4 px with an error of 2e-5,
   a 1-3 px shift re-rolls every brush stroke (error ~7e-3; the aliasing of strided convolutions, Zhang,
   "Making convolutional networks shift-invariant again", ICML 2019). We track the global motion (median
   of the optical flow) and reflect-pad each frame by its accumulated shift modulo the period, so the
   scene lands on the same grid phase in every frame: camera pans and shakes stop flickering, with no
   blur and a few pixels of padding as the only cost.
2. **What is left** (local motion, sub-pixel drift, zoom): the short-term consistency of Ruder et al.
   ("Artistic style transfer for videos", GCPR 2016) in its feed-forward form: warp the previous
   *output* onto the current frame with the input's optical flow (OpenCV's DIS) and blend it in where
   the flow is reliable: forward-backward consistency (Sundaram et al. 2010), inside the frame, and a
   photometric match of the warped input (which also catches scene cuts). ``out = styled + weight *
   mask * (warp(prev_out) - styled)``, then the blend's fine detail gets back the local contrast of its
   inputs (:func:`_restore_contrast`), since averaging two stroke textures that do not line up reads
   as blur and costs style. Occluded and revealed regions take the fresh stylization.

Use: :meth:`TemporalCoherence.observe` each input frame in order (returns its padding), stylize the
padded frames, then :meth:`TemporalCoherence.blend` each result in the same order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

#: Share of the warped previous result in a reliable pixel; tuned in bench/video.py (flicker vs style).
DEFAULT_WEIGHT = 0.5
#: Grid period to align to: 8 covers the transformer nets (4) and VGG to relu4_1 (8).
DEFAULT_PERIOD = 8
#: Flow is computed at most at this long side (DIS is robust to it and the cost stays small at 720p+).
FLOW_SIDE = 480


@dataclass
class _Flow:
    back: np.ndarray  # current -> previous, at flow resolution
    mask: np.ndarray  # reliability in [0, 1], at flow resolution


class TemporalCoherence:
    """Per clip state; frames must be observed, and then blended, in display order."""

    def __init__(self, weight: float = DEFAULT_WEIGHT, period: int = DEFAULT_PERIOD,
                 flow_side: int = FLOW_SIDE, keep_contrast: bool = True) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"blend weight must be in [0, 1), got {weight}")
        self.weight, self.period, self.flow_side, self.keep_contrast = weight, period, flow_side, keep_contrast
        # DIS "fast": 6 ms a flow at 640x360 against 50 ms for "medium", for flicker within ~10 % of it
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.reset()

    def reset(self) -> None:
        self._gray: np.ndarray | None = None
        self._offset = np.zeros(2)  # accumulated scene shift (x, y) in output pixels
        self._flows: deque[_Flow | None] = deque()
        self._prev_out: np.ndarray | None = None
        #: mean reliability of the flow per frame (diagnostics, bench)
        self.mask_means: list[float] = []

    @property
    def margin(self) -> int:
        """Pixels of padding every frame gets in total per axis (so a batch keeps one size)."""
        return self.period - 1 if self.period > 1 else 0

    def observe(self, frame: np.ndarray) -> tuple[int, int]:
        """Take the next input frame (H, W, 3) uint8; return its (left, top) padding for the grid phase."""
        gray = self._to_gray(frame)
        if self._gray is None or self._gray.shape != gray.shape:
            self._flows.append(None)
        else:
            flow = self._flow(gray, self._gray)
            self._flows.append(flow)
            scale = frame.shape[1] / gray.shape[1]
            reliable = flow.mask > 0.5
            if reliable.mean() > 0.2:  # global motion from the reliable vectors; else assume none
                self._offset += np.median(flow.back[reliable], axis=0) * scale
        self._gray = gray
        if self.period <= 1:
            return 0, 0
        px, py = (int(np.rint(v)) % self.period for v in self._offset)
        return px, py

    def blend(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        """The coherent version of ``styled`` (H, W, 3) float32 in [0, 1], the result for ``frame``."""
        flow = self._flows.popleft() if self._flows else None
        prev = self._prev_out
        if flow is None or prev is None or prev.shape != styled.shape or self.weight == 0:
            self._prev_out = styled
            return styled
        h, w = styled.shape[:2]
        fh, fw = flow.back.shape[:2]
        back, mask = flow.back, flow.mask
        if (fh, fw) != (h, w):  # flow was computed smaller: scale the field and its vectors up
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / fw, h / fh], np.float32)
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        warped = cv2.remap(prev, xs + back[..., 0], ys + back[..., 1], cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
        alpha = (self.weight * np.clip(mask, 0.0, 1.0))[..., None]
        out = styled + alpha * (warped - styled)
        if self.keep_contrast:
            out = _restore_contrast(out, styled, warped, alpha)
        out = np.clip(out, 0.0, 1.0)
        self.mask_means.append(float(mask.mean()))
        self._prev_out = out
        return out

    def _to_gray(self, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        scale = self.flow_side / max(h, w)
        if scale < 1:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        return gray

    def _flow(self, gray: np.ndarray, prev: np.ndarray) -> _Flow:
        back = self._dis.calc(gray, prev, None)  # gray(x) ~ prev(x + back(x))
        fwd = self._dis.calc(prev, gray, None)
        h, w = gray.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = xs + back[..., 0], ys + back[..., 1]
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        loop = back + fwd_at  # ~0 where the two flows agree
        agree = (loop ** 2).sum(-1) <= 0.01 * ((back ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        prev_at = cv2.remap(prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photometric = np.abs(gray.astype(np.float32) - prev_at.astype(np.float32)) <= 24.0
        mask = (agree & inside & photometric).astype(np.float32)
        mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((3, 3), np.uint8)), (0, 0), 1.5)
        return _Flow(back, mask)


def _local(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


def _restore_contrast(out: np.ndarray, styled: np.ndarray, warped: np.ndarray, alpha: np.ndarray,
                      detail_sigma: float = 2.0, stats_sigma: float = 6.0) -> np.ndarray:
    """Give the blend's fine detail back the local contrast its two inputs had.

    Averaging two brush-stroke textures that do not line up exactly halves their variance (for
    uncorrelated textures by ``(1-a)^2 + a^2``), which reads as blur and costs style. Like the
    histogram-preserving blending of Heitz & Neyret (HPG 2018) we rescale the blend's detail layer, but
    with the gain measured locally (target: the inputs' variance mixed by ``alpha``), so regions where
    the strokes already agree get a gain of ~1 and nothing is over-sharpened.
    """
    base = _local(out, detail_sigma)
    detail = out - base
    var_out = _local(detail * detail, stats_sigma)
    d_s, d_w = styled - _local(styled, detail_sigma), warped - _local(warped, detail_sigma)
    target = (1 - alpha) * _local(d_s * d_s, stats_sigma) + alpha * _local(d_w * d_w, stats_sigma)
    gain = np.sqrt(target / np.maximum(var_out, 1e-6)).clip(1.0, 2.0)
    return base + gain * detail
