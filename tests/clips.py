"""Tiny clips made on the spot for tests and benchmarks: a camera pan over a photo, with a tone as sound."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def pan_frames(photo: Image.Image | None, frames: int, size: tuple[int, int], shift: int) -> list[np.ndarray]:
    """``frames`` windows of ``size`` sliding right by ``shift`` px a frame: frame_t(x) = frame_{t-1}(x + shift)."""
    w, h = size
    need = (w + shift * (frames - 1), h)
    if photo is None:  # a procedural scene: smooth blobs plus fine texture, so flow has something to lock on
        rng = np.random.default_rng(0)
        base = rng.random((need[1] // 8 + 1, need[0] // 8 + 1, 3)) * 255
        photo = Image.fromarray(base.astype(np.uint8)).resize(need, Image.Resampling.BICUBIC)
        noise = rng.normal(0, 12, (need[1], need[0], 1))
        photo = Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8))
    scale = max(need[0] / photo.width, need[1] / photo.height)
    big = photo.convert("RGB").resize((max(need[0], round(photo.width * scale)),
                                       max(need[1], round(photo.height * scale))), Image.Resampling.LANCZOS)
    arr = np.asarray(big)
    return [np.ascontiguousarray(arr[:h, t * shift: t * shift + w]) for t in range(frames)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int | Fraction = 24, audio: bool = True,
               tone_hz: float = 440.0) -> Path:
    """An mp4 (H.264 + AAC tone) or, for a ``.gif`` path, an animated GIF of ``frames``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / float(fps)), loop=0)
        return path
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        sound = out.add_stream("aac", rate=44100) if audio else None
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = len(frames) / float(fps)
            n = int(44100 * seconds)
            t = np.arange(n) / 44100
            samples = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)[None, :]
            for start in range(0, n, 1024):
                chunk = av.AudioFrame.from_ndarray(samples[:, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 44100, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def lying_mkv(path: Path, seconds: float, claimed: float, fps: int = 5, size: tuple[int, int] = (64, 48)) -> Path:
    """A Matroska clip of ``seconds`` whose header says it lasts ``claimed``: the Segment's Duration element
    (ID 0x4489, an 8-byte float in milliseconds at the default timecode scale) is rewritten after muxing."""
    frames = pan_frames(None, round(seconds * fps), size, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")
    if at < 0:
        raise ValueError("no 8-byte Duration element in the muxed file")
    data[at + 3: at + 11] = struct.pack(">d", claimed * 1000.0)
    path.write_bytes(bytes(data))
    return path
