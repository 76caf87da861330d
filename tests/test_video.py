"""Video and GIF: frame count, rate and audio kept, GIF round trip, flicker reduced, clear errors, cancel."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import pan_frames, write_clip
from PIL import Image

from stylizer import video
from stylizer.cli import main
from stylizer.errors import Cancelled, MethodError, VideoError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.metrics import pan_warping_error, quality
from stylizer.temporal import TemporalCoherence

PRESET = "starry_night"  # a shipped CIN preset: fast on the CPU


@pytest.fixture
def pan(tmp_path: Path, content_image: Image.Image) -> Path:
    """1 s at 12 fps, 64x48, panning 3 px a frame, with an AAC tone."""
    return write_clip(tmp_path / "pan.mp4", pan_frames(content_image, 12, (64, 48), 3), fps=12)


def _request(path: Path, **kw) -> StylizeRequest:
    return StylizeRequest(content=path, styles=[StyleRef(preset=PRESET)], size=None, device="cpu", **kw)


def test_probe_reads_the_clip(pan: Path) -> None:
    info = video.probe(pan)
    assert (info.width, info.height, info.fps, info.frames) == (64, 48, Fraction(12), 12)
    assert info.audio == "aac" and abs(info.duration - 1.0) < 0.1


def test_frames_rate_and_audio_are_kept(pan: Path, tmp_path: Path) -> None:
    progress: list[int] = []
    result = Stylizer().stylize_video(_request(pan, progress=lambda p: progress.append(p.step)), tmp_path / "out.mp4")
    out = video.probe(result.path)
    assert (out.width, out.height, out.fps, out.frames, out.codec, out.audio) == (64, 48, Fraction(12), 12,
                                                                                   "h264", "aac")
    assert abs(out.duration - 1.0) < 0.1
    assert progress and progress[-1] == 12 and progress == sorted(progress)
    frames = video.read_frames(result.path)
    source = video.read_frames(pan)
    assert len(frames) == 12 and np.abs(frames[5].astype(int) - source[5].astype(int)).mean() > 10  # stylized


def test_size_scales_to_even_sides(pan: Path, tmp_path: Path) -> None:
    request = _request(pan)
    request.size = 41
    out = Stylizer().stylize_video(request, tmp_path / "small.mp4").info
    assert (out.width, out.height) == (40, 30) and out.frames == 12


def test_gif_round_trip(tmp_path: Path, content_image: Image.Image) -> None:
    src = write_clip(tmp_path / "anim.gif", pan_frames(content_image, 8, (48, 32), 2), fps=10)
    assert main(["stylize", str(src), "--preset", PRESET, "-o", str(tmp_path / "out.gif"), "--device", "cpu"]) == 0
    with Image.open(tmp_path / "out.gif") as gif:
        assert (gif.size, gif.n_frames, gif.info["duration"], gif.info["loop"]) == ((48, 32), 8, 100, 0)
    assert main(["stylize", str(src), "--preset", PRESET, "-o", str(tmp_path / "out.mp4"), "--device", "cpu"]) == 0
    info = video.probe(tmp_path / "out.mp4")
    assert (info.frames, info.fps, info.audio) == (8, Fraction(10), None)


def test_any_picture_style_and_folder_of_clips(tmp_path: Path, content_image, style_image) -> None:
    folder = tmp_path / "clips"
    write_clip(folder / "a.mp4", pan_frames(content_image, 6, (48, 32), 2), fps=6, audio=False)
    write_clip(folder / "b.gif", pan_frames(content_image, 4, (48, 32), 2), fps=8)
    content_image.save(folder / "c.jpg")
    style_image.save(tmp_path / "style.png")
    out = tmp_path / "out"
    assert main(["stylize", str(folder), "--style", str(tmp_path / "style.png"), "--size", "48",
                 "-o", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.gif", "c.png"]
    assert video.probe(out / "a.mp4").frames == 6


def test_coherence_lowers_flicker_and_keeps_the_style(tmp_path: Path) -> None:
    """A synthetic pan at 2.5 px a frame (not a multiple of the nets' stride): flicker at most half."""
    frames = pan_frames(None, 16, (192, 128), 5)
    frames = [np.asarray(Image.fromarray(f).resize((96, 64), Image.Resampling.LANCZOS)) for f in frames]
    src = write_clip(tmp_path / "pan.mp4", frames, fps=12, audio=False)
    stylizer = Stylizer()
    per_frame = video.read_frames(stylizer.stylize_video(_request(src), tmp_path / "a.mp4", coherent=False).path)
    coherent = video.read_frames(stylizer.stylize_video(_request(src), tmp_path / "b.mp4").path)
    ratio = pan_warping_error(coherent, 2.5) / pan_warping_error(per_frame, 2.5)
    assert ratio < 0.5, ratio
    style = Image.open(stylizer.manifest.preset(PRESET).thumbnail)  # the preset's look, as a style reference
    mid = len(frames) // 2
    gap = [quality(Image.fromarray(f[mid]), Image.fromarray(frames[mid]), style)["style_gap"]
           for f in (per_frame, coherent)]
    assert gap[1] <= 1.15 * gap[0], gap


def test_grid_phase_follows_a_pan() -> None:
    coherence = TemporalCoherence()
    frames = pan_frames(None, 5, (96, 64), 3)
    assert [coherence.observe(f) for f in frames] == [(0, 0), (3, 0), (6, 0), (1, 0), (4, 0)]


def test_bad_clips_get_one_clear_error(tmp_path: Path, pan: Path) -> None:
    stylizer = Stylizer()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    with pytest.raises(VideoError, match=r"not a video|cannot be decoded"):
        stylizer.stylize_video(_request(broken), tmp_path / "x.mp4")
    with pytest.raises(VideoError, match=r"at most 0\.5 s"):
        stylizer.stylize_video(_request(pan), tmp_path / "x.mp4", limits=video.VideoLimits(max_seconds=0.5))
    with pytest.raises(VideoError, match="too large"):
        stylizer.stylize_video(_request(pan), tmp_path / "x.mp4", limits=video.VideoLimits(max_side=32))
    slow = StylizeRequest(content=pan, styles=[StyleRef(image=Image.new("RGB", (32, 32)))], method="gatys")
    with pytest.raises(MethodError, match="too slow for video"):
        stylizer.stylize_video(slow, tmp_path / "x.mp4")
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))
    assert main(["stylize", str(broken), "--preset", PRESET, "-o", str(tmp_path / "y.mp4")]) == 2
    assert main(["stylize", str(pan), "--preset", PRESET, "-o", str(tmp_path / "y.png")]) == 2


def test_cancel_stops_and_leaves_no_file(pan: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(p) -> None:
        cancel.set()  # after the first batch

    with pytest.raises(Cancelled):
        Stylizer().stylize_video(_request(pan, progress=progress, cancel=cancel), tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out*"))


def test_a_clip_whose_header_lies_is_stopped_while_decoding(tmp_path) -> None:
    """The header says 1 s, the file holds 8: counted while decoding, refused at the limit, no output left."""
    from clips import lying_mkv

    from stylizer.errors import VideoError
    from stylizer.video import VideoLimits, probe, transcode

    clip = lying_mkv(tmp_path / "lie.mkv", seconds=8, claimed=1)
    assert probe(clip).duration == pytest.approx(1.0)  # what the container claims
    with pytest.raises(VideoError, match="longer than its header says"):
        transcode(clip, tmp_path / "out.mp4", lambda x: x, limits=VideoLimits(max_seconds=3))
    assert not list(tmp_path.glob("*out*"))
