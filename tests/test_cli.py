"""CLI contract (brief section 2): exit 0 writing the output, exit 2 with one stderr line on bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from stylizer.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: Tiny and fast: Gatys needs no trained weights, so these tests do not depend on other methods.
FAST = ["--method", "gatys", "--size", "32", "--steps", "2", "--device", "cpu", "--seed", "0"]


@pytest.fixture
def files(tmp_path: Path, content_image: Image.Image, style_image: Image.Image) -> dict[str, Path]:
    content, style, corrupt = tmp_path / "photo.jpg", tmp_path / "style.png", tmp_path / "broken.jpg"
    content_image.save(content, quality=90)
    style_image.save(style)
    corrupt.write_bytes(content.read_bytes()[:300])
    return {"content": content, "style": style, "corrupt": corrupt, "dir": tmp_path}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_success_writes_the_file(files, capsys) -> None:
    out = files["dir"] / "out" / "result.jpg"
    assert main(["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out), *FAST]) == 0
    image = Image.open(out)
    assert image.size == (32, 21) and image.format == "JPEG"
    assert capsys.readouterr().err == ""


def test_output_without_suffix_becomes_png(files) -> None:
    out = files["dir"] / "result"
    assert main(["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out), *FAST]) == 0
    assert Image.open(out.with_suffix(".png")).format == "PNG"


def test_folder_in_folder_out(files, content_image) -> None:
    folder = files["dir"] / "in"
    folder.mkdir()
    content_image.save(folder / "a.jpg")
    content_image.rotate(180).save(folder / "b.png")
    (folder / "readme.txt").write_text("not an image")
    out = files["dir"] / "outdir"
    assert main(["stylize", str(folder), "--style", str(files["style"]), "-o", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_several_inputs_need_a_folder(files, capsys) -> None:
    folder = files["dir"] / "in"
    folder.mkdir()
    Image.open(files["content"]).save(folder / "a.jpg")
    code = main(["stylize", str(folder), "--style", str(files["style"]), "-o", str(files["dir"] / "x.png"), *FAST])
    assert code == 2
    assert "output folder" in _error_line(capsys)


def test_empty_folder(files, capsys) -> None:
    empty = files["dir"] / "empty"
    empty.mkdir()
    assert main(["stylize", str(empty), "--style", str(files["style"]), "-o", str(files["dir"] / "o"), *FAST]) == 2
    assert "no images" in _error_line(capsys)


@pytest.mark.parametrize(
    ("which", "message"),
    [("missing", "no such file"), ("corrupt", "corrupt or truncated"), ("style_missing", "no such file")],
)
def test_unusable_input(files, capsys, which: str, message: str) -> None:
    content, style = files["content"], files["style"]
    if which == "missing":
        content = files["dir"] / "nope.jpg"
    elif which == "corrupt":
        content = files["corrupt"]
    else:
        style = files["dir"] / "nope.png"
    out = files["dir"] / "o.png"
    assert main(["stylize", str(content), "--style", str(style), "-o", str(out), *FAST]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        [],  # no subcommand
        ["stylize", "{c}", "-o", "{o}"],  # neither --style nor --preset
        ["stylize", "{c}", "--style", "{s}", "--preset", "x", "-o", "{o}"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--strength", "1.5"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--strength", "lots"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--size", "big"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--bogus"],
        ["stylize", "{c}", "--style", "{s}", "--style-weights", "1", "2", "-o", "{o}"],
        ["stylize", "{c}", "--style", "{s}", "--style-weights", "-1", "-o", "{o}"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--method", "nonsense"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--size", "5"],
        ["stylize", "{c}", "--style", "{s}", "-o", "{o}", "--method", "gatys", "--steps", "0"],
    ],
    ids=["no-command", "no-style", "style-and-preset", "strength-range", "strength-nan", "size-text",
         "unknown-flag", "weight-count", "negative-weight", "unknown-method", "size-small", "zero-steps"],
)
def test_bad_arguments(files, capsys, args: list[str]) -> None:
    values = {"c": str(files["content"]), "s": str(files["style"]), "o": str(files["dir"] / "o.png")}
    assert main([a.format(**values) for a in args]) == 2
    _error_line(capsys)


def test_unknown_preset(files, capsys) -> None:
    code = main(["stylize", str(files["content"]), "--preset", "no_such_preset_anywhere",
                 "-o", str(files["dir"] / "o.png")])
    assert code == 2
    assert "no_such_preset_anywhere" in _error_line(capsys)


def test_presets_lists_rows(capsys) -> None:
    assert main(["presets"]) == 0
    assert capsys.readouterr().out.strip()


def test_real_process_exit_codes(files) -> None:
    """``python -m stylizer`` as other tools call it: the exit status and a single stderr line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "stylizer", "stylize", str(files["dir"] / "missing.jpg"), "--style",
         str(files["style"]), "-o", str(files["dir"] / "o.png")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert proc.stdout == ""


def test_json_summary_for_scripts(files, tmp_path, capsys) -> None:
    """``--json``: one JSON line on stdout (files, seconds, outputs); nothing on stderr off a terminal."""
    out = tmp_path / "json_out"
    assert main(["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out), *FAST,
                 "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["files"] == 1 and summary["outputs"] == [str(out.with_suffix(".png"))] and captured.err == ""
    assert Path(summary["outputs"][0]).is_file()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_on_a_terminal_only(tmp_path) -> None:
    """A folder's bar and summary line, and a training's bar with its losses, show on a terminal; in a pipe,
    nothing (the logs say it)."""
    from stylizer.progress_bar import Reporter, TrainingBar

    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = TrainingBar("student c", 10, 2, stream=stream)
        bar.update(5, "loss=1.2345")
        bar.close()
        reporter = Reporter(2, tmp_path, stream=stream)
        reporter.done(tmp_path / "a.jpg", tmp_path / "a.png")
        reporter.done(tmp_path / "b.jpg", tmp_path / "b.png")
        reporter.close()
    assert pipe.getvalue() == ""
    assert "stylized 2 files in" in terminal.getvalue() and str(tmp_path) in terminal.getvalue()
