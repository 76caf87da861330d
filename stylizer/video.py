"""Video and animated GIF input/output: probe, stream frames through a stylizer, write mp4 or GIF.

PyAV (the FFmpeg libraries inside its wheel) decodes anything FFmpeg reads (mp4, mov, webm, mkv, GIF...)
and encodes H.264 ``yuv420p`` mp4, which every Telegram client plays. Frames are streamed: decoded,
scaled by FFmpeg straight to the output size, stylized in small batches and encoded by a writer thread
while the next batch runs, so memory is bounded by a few batches whatever the clip's length (GIF output
is the exception: it holds the palette-indexed frames, one byte a pixel, so it is capped in frames).

Kept from the input: frame count (one output frame per decoded frame), frame rate (constant, the
stream's average rate), hence duration, and the audio track (copied as is when mp4 can carry its codec,
else re-encoded to AAC; GIFs have none). Rotated phone videos are turned upright. Anything unusable or
beyond :class:`VideoLimits` raises :class:`~stylizer.errors.VideoError` with a sentence for the user.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import Cancelled, VideoError
from .methods import Progress, ProgressFn
from .temporal import TemporalCoherence

log = logging.getLogger(__name__)

#: Audio codecs an mp4 file carries as they are (anything else is re-encoded to AAC).
MP4_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})
DEFAULT_BATCH = 4

FrameFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VideoLimits:
    """What the library accepts; the bot passes tighter ones from its settings."""

    max_seconds: float = 600.0
    max_frames: int = 20_000
    max_side: int = 4096
    min_side: int = 16
    max_gif_frames: int = 1_500


@dataclass(frozen=True)
class VideoInfo:
    width: int  # upright (after rotation)
    height: int
    fps: Fraction
    frames: int  # from the container, else duration x fps (an estimate for progress)
    duration: float  # seconds
    codec: str
    audio: str | None  # audio codec name, None without sound
    rotation: int = 0  # degrees the decoded frames are turned to be upright
    is_gif: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


#: Demuxers we open (FFmpeg's names, one of a comma-separated ``format.name``): what phones, browsers and Telegram
#: send. Anything else (playlists, image sequences, raw streams, the hundreds of exotic formats) is refused
#: before a packet is read.
CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm", "gif", "avi"})
#: Video decoders we run (FFmpeg codec names).
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4", "gif", "mjpeg", "mpeg2video",
                          "mpeg1video", "theora", "prores", "h263"})


def _open(source: Path) -> av.container.InputContainer:
    """Open a local file only: FFmpeg's protocol whitelist is ``file`` (a crafted file cannot make it reach a URL
    or another protocol), and the container and the video codec must be on our allow-lists."""
    try:
        container = av.open(str(source), "r", options={"protocol_whitelist": "file"})
    except FileNotFoundError as exc:
        raise VideoError(f"{source}: no such file") from exc
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{Path(source).name}: not a video I can read") from exc
    fmt = set((container.format.name or "").split(","))
    codecs = {s.codec_context.name for s in container.streams.video}
    if not fmt & CONTAINERS or not codecs <= VIDEO_CODECS:
        container.close()
        raise VideoError(f"{Path(source).name}: not a video format I take (mp4, mov, webm, mkv, avi or GIF)")
    return container


def _rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 240:
            return Fraction(rate).limit_denominator(1001)
    return Fraction(25)


def probe(source: Path | str, limits: VideoLimits | None = None) -> VideoInfo:
    """Read the header and decode the first frame (a file that cannot give one is refused)."""
    limits = limits or VideoLimits()
    source = Path(source)
    with _open(source) as container:
        if not container.streams.video:
            raise VideoError(f"{source.name}: has no video track")
        stream = container.streams.video[0]
        fps = _rate(stream)
        try:
            first = next(container.decode(stream))
        except (StopIteration, av.FFmpegError) as exc:
            raise VideoError(f"{source.name}: the video cannot be decoded") from exc
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        frames = int(stream.frames or round(duration * fps) or 1)
        if not duration:
            duration = frames / float(fps)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        info = VideoInfo(width, height, fps, frames, duration, stream.codec_context.name, audio, rotation,
                         is_gif=stream.codec_context.name == "gif")
    _check(info, limits, source.name)
    return info


def _check(info: VideoInfo, limits: VideoLimits, name: str) -> None:
    if min(info.size) < limits.min_side:
        raise VideoError(f"{name}: the video is too small ({info.width}x{info.height})")
    if max(info.size) > limits.max_side:
        raise VideoError(f"{name}: the video is too large ({info.width}x{info.height}), "
                         f"the longest side may be at most {limits.max_side} px")
    if info.duration > limits.max_seconds + 0.25:  # container rounding
        raise VideoError(f"{name}: the video is {info.duration:.0f} s long, at most {limits.max_seconds:g} s please")
    if info.frames > limits.max_frames:
        raise VideoError(f"{name}: the video has {info.frames} frames, at most {limits.max_frames}")


def output_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """Scale to ``long_side`` (None: keep), both sides even (yuv420p needs it)."""
    w, h = size
    if long_side:
        scale = long_side / max(w, h)
        w, h = w * scale, h * scale
    return max(2, round(w / 2) * 2), max(2, round(h / 2) * 2)


def _upright(array: np.ndarray, rotation: int) -> np.ndarray:
    # FFmpeg's display matrix angle is counter-clockwise; np.rot90 turns counter-clockwise too
    return np.ascontiguousarray(np.rot90(array, k=(rotation // 90) % 4)) if rotation else array


class _Writer:
    """Encodes frames in its own thread (FFmpeg and Pillow release the GIL) so stylizing goes on meanwhile."""

    def __init__(self, target: Callable[[np.ndarray], None]) -> None:
        self._target = target
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2 * DEFAULT_BATCH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._target(frame)
                except BaseException as exc:  # surfaced in put()/close()
                    self._error = exc

    def put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _batches(frames: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def transcode(
    source: Path | str,
    output: Path | str,
    stylize: FrameFn,
    *,
    size: int | None = None,
    batch: int = DEFAULT_BATCH,
    coherence: TemporalCoherence | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    limits: VideoLimits | None = None,
    crf: int = 20,
    info: VideoInfo | None = None,
) -> VideoInfo:
    """Stylize every frame of ``source`` into ``output`` (``.gif`` -> GIF, anything else -> H.264 mp4).

    ``stylize`` maps a (B, 3, H, W) float batch in [0, 1] to the same shape; ``coherence`` (a
    :class:`TemporalCoherence`) keeps the nets' grid on the scene and blends the results along the flow.
    Written to a temporary name and renamed at the end, so a cancelled or failed run leaves no half file.
    Returns the output's :class:`VideoInfo`; ``info``: the source's, when the caller has probed it already.
    """
    source, output = Path(source), Path(output)
    limits = limits or VideoLimits()
    info = info or probe(source, limits)
    gif = output.suffix.lower() == ".gif"
    if gif and info.frames > limits.max_gif_frames:
        raise VideoError(f"{source.name}: {info.frames} frames are too many for a GIF "
                         f"(at most {limits.max_gif_frames}); write an mp4 instead")
    width, height = output_size(info.size, size)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.part{output.suffix}")
    if coherence is not None:
        coherence.reset()
    done = 0
    try:
        with _open(source) as container:
            sink = _GifSink(tmp, info.fps) if gif else _Mp4Sink(tmp, info, width, height, container, crf)
            writer = _Writer(sink.write_video)
            try:
                frames = _decode(container, info, width, height, sink, limits, source.name)
                for group in _batches(frames, max(1, batch)):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled")
                    y = _stylize_group(group, stylize, coherence)
                    for frame, styled in zip(group, y, strict=True):
                        if coherence is not None:
                            styled = coherence.blend(frame, styled)
                        writer.put((np.clip(styled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
                    done += len(group)
                    if progress is not None:
                        progress(Progress("video", min(done, info.frames), max(info.frames, done)))
            finally:
                writer.close()
            sink.close()
        if done == 0:
            raise VideoError(f"{source.name}: the video has no decodable frames")
        tmp.replace(output)
    except av.FFmpegError as exc:
        raise VideoError(f"{source.name}: the video could not be processed ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s -> %s: %d frames at %s fps, %dx%d", source.name, output.name, done, info.fps, width, height)
    audio = None if gif or info.audio is None else (info.audio if info.audio in MP4_AUDIO else "aac")
    return VideoInfo(width, height, info.fps, done, done / float(info.fps), "gif" if gif else "h264", audio,
                     is_gif=gif)


def _stylize_group(group: list[np.ndarray], stylize: FrameFn,
                   coherence: TemporalCoherence | None) -> np.ndarray:
    """One batch through the net; with coherence, each frame padded to its grid phase and cropped back."""
    x = torch.from_numpy(np.stack(group)).permute(0, 3, 1, 2).float().div_(255.0)
    if coherence is None:
        return stylize(x).float().clamp_(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
    h, w = x.shape[-2:]
    m = coherence.margin
    pads = [coherence.observe(frame) for frame in group]
    padded = torch.cat([F.pad(x[i: i + 1], (px, m - px, py, m - py), mode="reflect")
                        for i, (px, py) in enumerate(pads)])
    y = stylize(padded).float().clamp_(0, 1)
    y = torch.cat([y[i: i + 1, :, py: py + h, px: px + w] for i, (px, py) in enumerate(pads)])
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def _decode(container, info: VideoInfo, width: int, height: int, sink, limits: VideoLimits,
            name: str) -> Iterator[np.ndarray]:
    """Upright RGB frames at the output size; audio packets go straight to the sink on the way.

    The header is not trusted: a file whose container says 1 s may hold 100. Frames are counted (each becomes
    1/fps of the output) and their timestamps read while decoding, and past ``limits`` (time, frames, frame size)
    the clip is refused instead of being stylized in full.
    """
    max_frames = min(limits.max_frames, math.ceil((limits.max_seconds + 0.25) * float(info.fps)))
    count, first_time = 0, None
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    audio = container.streams.audio[0] if container.streams.audio and sink.takes_audio else None
    # FFmpeg scales the frame before it is turned upright, so ask for the pre-rotation shape
    dec_w, dec_h = (height, width) if info.rotation in (90, 270) else (width, height)
    streams = [video] + ([audio] if audio is not None else [])
    for packet in container.demux(*streams):
        if packet.stream is audio:
            if packet.dts is not None:
                with sink.lock:
                    sink.write_audio(packet)
            continue
        for frame in packet.decode():
            count += 1
            if frame.time is not None:
                first_time = frame.time if first_time is None else first_time
                late = frame.time - first_time > limits.max_seconds + 0.25
            else:
                late = False
            if count > max_frames or late:
                raise VideoError(f"{name}: the video is longer than its header says; "
                                 f"at most {limits.max_seconds:g} s please")
            if max(frame.width, frame.height) > limits.max_side:
                raise VideoError(f"{name}: the video is too large ({frame.width}x{frame.height}), "
                                 f"the longest side may be at most {limits.max_side} px")
            rgb = frame.reformat(width=dec_w, height=dec_h, format="rgb24",
                                 interpolation="AREA").to_ndarray()
            yield _upright(rgb, info.rotation)
    with sink.lock:
        sink.flush_audio()


class _Mp4Sink:
    """H.264 yuv420p (+ the audio track) in an mp4 with the index at the front (plays while loading)."""

    takes_audio = True

    def __init__(self, path: Path, info: VideoInfo, width: int, height: int, source, crf: int) -> None:
        self.lock = threading.Lock()  # the muxer is shared by the writer thread (video) and the decoder (audio)
        self.out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.video = self.out.add_stream("libx264", rate=info.fps)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast"}
        self.index = 0
        self.audio = None
        self._reencode = False
        if source.streams.audio:
            audio_in = source.streams.audio[0]
            if audio_in.codec_context.name in MP4_AUDIO:
                self.audio = self.out.add_stream_from_template(audio_in)
            else:  # e.g. Vorbis from a webm: decode here, encode AAC
                self.audio = self.out.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
                self._reencode = True

    def write_video(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.index
        self.index += 1
        packets = self.video.encode(frame)
        with self.lock:
            self.out.mux(packets)

    def write_audio(self, packet) -> None:
        if self.audio is None:
            return
        if not self._reencode:
            packet.stream = self.audio
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            self.out.mux(self.audio.encode(frame))

    def flush_audio(self) -> None:
        if self.audio is not None and self._reencode:
            self.out.mux(self.audio.encode(None))

    def close(self) -> None:
        with self.lock:
            self.out.mux(self.video.encode(None))
            self.out.close()


class _GifSink:
    """Palette frames (one byte a pixel) collected and written by Pillow at the end, looping forever."""

    takes_audio = False

    def __init__(self, path: Path, fps: Fraction) -> None:
        self.lock = threading.Lock()
        self.path, self.frames = path, []
        self.duration = max(20, round(1000 / float(fps)))  # browsers treat < 20 ms as 100 ms

    def write_video(self, rgb: np.ndarray) -> None:
        self.frames.append(Image.fromarray(rgb).quantize(colors=255, method=Image.Quantize.MEDIANCUT,
                                                         dither=Image.Dither.NONE))

    def write_audio(self, packet) -> None:  # pragma: no cover - GIFs take no audio
        pass

    def flush_audio(self) -> None:
        pass

    def close(self) -> None:
        if self.frames:
            self.frames[0].save(self.path, format="GIF", save_all=True, append_images=self.frames[1:],
                                duration=self.duration, loop=0, optimize=False, disposal=1)


def read_frames(source: Path | str, limit: int | None = None) -> list[np.ndarray]:
    """All (or the first ``limit``) frames of a clip as upright RGB arrays: for tests and benchmarks."""
    info = probe(source)
    out: list[np.ndarray] = []
    with _open(Path(source)) as container:
        for frame in container.decode(container.streams.video[0]):
            out.append(_upright(frame.to_ndarray(format="rgb24"), info.rotation))
            if limit is not None and len(out) >= limit:
                break
    return out
