"""The shipped preset zoo, registry errors, and the facade/CLI end to end with committed presets."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stylizer.cli import main
from stylizer.errors import MethodError, PresetError
from stylizer.facade import StyleRef, Stylizer, StylizeRequest
from stylizer.manifest import Manifest, verify_file, write_preset_manifest
from stylizer.methods import available_methods


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.default()


def _copy_manifest(tmp_path: Path, manifest: Manifest, *presets) -> Manifest:
    """A manifest in ``tmp_path`` with the shipped cin_base model and the given presets."""
    base = manifest.model("cin_base")
    shutil.copy(base.file, tmp_path / base.file.name)
    path = tmp_path / "manifest.toml"
    write_preset_manifest(path, presets)
    text = f'[models.cin_base]\nfile = "{base.file.name}"\nsha256 = "{base.sha256}"\n\n' + path.read_text()
    path.write_text(text)
    return Manifest([path])


#: Files of ../shared/data/styles that are copies (crops, other resolutions) of another painting there.
SAME_PAINTING = {
    "van_gogh_starry_night_hires.jpg": "van_gogh_starry_night.jpg",
    "mondrian_cropped.jpg": "mondrian.jpg",
    "picasso_seated_nude_hr.jpg": "picasso_seated_nude.jpg",
    "picasso_la_muse.jpg": "la_muse.jpg",
    "picasso_self_portrait.jpg": "picasso_self_portrait_1907.jpg",
    "woman_in_peasant_dress_cropped.jpg": "woman_in_peasant_dress.jpg",
    "turner_the_wreck.jpg": "turner_shipwreck_of_the_minotaur.jpg",
}


def test_zoo_has_enough_verified_presets(manifest: Manifest) -> None:
    cin = [p for p in manifest.enabled_presets() if p.method == "cin"]
    johnson = [p for p in manifest.enabled_presets() if p.method == "johnson"]
    paintings = {SAME_PAINTING.get(p.source, p.source) for p in manifest.enabled_presets()}
    # issue 15: 24 distinct paintings, each holding the gate (bench/preset_quality.py --stress)
    assert len(paintings) >= 24 and len(cin) >= 19 and len(johnson) >= 5
    for p in [*cin, *johnson]:
        verify_file(p.file, p.sha256, p.name)
        assert p.sha256 and p.source and p.licence
        assert p.thumbnail is not None and p.thumbnail.is_file()
        assert p.file.stat().st_size < 2_000_000  # fp16 and small
    assert {"cin", "johnson"} <= set(available_methods(manifest))


@pytest.mark.parametrize("name", ["udnie", "johnson_udnie"])
def test_facade_end_to_end_with_a_committed_preset(name: str, content_image, manifest: Manifest) -> None:
    stylizer = Stylizer(manifest)
    result = stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset=name)], size=96))
    assert result.image.size == (96, 64)
    assert result.method == manifest.preset(name).method
    out = np.asarray(result.image, dtype=np.float32)
    src = np.asarray(content_image, dtype=np.float32)
    assert np.abs(out - src).mean() > 10  # it really is stylized
    zero = stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset=name)], size=96,
                                           strength=0.0)).image
    assert np.abs(np.asarray(zero, dtype=np.float32) - src).mean() < 2  # strength 0 gives the photo back


def test_cin_presets_mix_and_fp32_matches_bf16(content_image, manifest: Manifest) -> None:
    stylizer = Stylizer(manifest)
    mixed = stylizer.stylize(StylizeRequest(content=content_image, size=64,
                                            styles=[StyleRef(preset="candy", weight=1), StyleRef(preset="mondrian")]))
    assert mixed.method == "cin"
    a = stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="candy")], size=64,
                                        mixed_precision=False)).image
    b = stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="candy")], size=64)).image
    assert np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean() < 6


def test_presets_of_other_methods_or_images_are_refused(content_image, style_image, manifest: Manifest) -> None:
    stylizer = Stylizer(manifest)
    with pytest.raises(MethodError):
        stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(image=style_image)], method="cin"))
    with pytest.raises(MethodError):
        stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="johnson_udnie")],
                                        method="cin", size=64))


def test_unknown_preset_is_a_clear_error(content_image, manifest: Manifest) -> None:
    with pytest.raises(PresetError, match="unknown preset"):
        Stylizer(manifest).stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="nope")]))


def test_missing_file(tmp_path: Path, content_image, manifest: Manifest) -> None:
    """One preset of a working zoo lost its file: that preset fails clearly, the others keep working."""
    preset = replace(manifest.preset("starry_night"), name="ghost", file=tmp_path / "cin_ghost.safetensors")
    m = _copy_manifest(tmp_path, manifest, preset, manifest.preset("mondrian"))
    with pytest.raises(PresetError, match="missing"):
        Stylizer(m).stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="ghost")], size=64))


@pytest.mark.parametrize("method", ["cin", "johnson"])
def test_corrupt_file_sha_mismatch_and_unhashed(method: str, tmp_path: Path, content_image,
                                                manifest: Manifest) -> None:
    src = manifest.preset("starry_night" if method == "cin" else "johnson_udnie")
    broken = tmp_path / f"{method}_broken.safetensors"
    data = bytearray(src.file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    truncated = tmp_path / f"{method}_truncated.safetensors"
    truncated.write_bytes(src.file.read_bytes()[:100])
    m = _copy_manifest(tmp_path, manifest, replace(src, name="broken", file=broken),
                       replace(src, name="truncated", file=truncated, sha256=""))
    stylizer = Stylizer(m)
    with pytest.raises(PresetError, match="corrupt"):
        stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="broken")], size=64))
    with pytest.raises(PresetError, match="cannot read"):
        stylizer.stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="truncated")], size=64))


def test_rows_of_another_base_are_refused(tmp_path: Path, content_image, manifest: Manifest) -> None:
    """A row file records its base's sha256; a different base net must not silently use it."""
    from safetensors.torch import load_file, save_file

    src = manifest.preset("starry_night")
    foreign = tmp_path / "cin_foreign.safetensors"
    save_file(load_file(str(src.file)), str(foreign), metadata={"base_sha256": "0" * 64})
    m = _copy_manifest(tmp_path, manifest, replace(src, name="foreign", file=foreign, sha256=""))
    with pytest.raises(PresetError, match="another CIN base"):
        Stylizer(m).stylize(StylizeRequest(content=content_image, styles=[StyleRef(preset="foreign")], size=64))


def test_cli_lists_presets_and_rejects_bad_training_args(capsys, tmp_path: Path) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "udnie" in out and "johnson_udnie" in out and "picabia_udnie.jpg" in out
    assert main(["train-preset", "x", "--method", "gatys", "--content-dir", str(tmp_path)]) == 2
    assert main(["train-preset", "--method", "cin", "--content-dir", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_stylizes_with_a_preset(tmp_path: Path, content_image) -> None:
    src = tmp_path / "photo.png"
    content_image.save(src)
    out = tmp_path / "out.png"
    assert main(["stylize", str(src), "--preset", "the_scream:2", "mondrian:1", "--size", "64", "-o", str(out)]) == 0
    assert out.is_file()
