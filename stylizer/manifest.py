"""The weights manifest: which trained networks and presets exist, where their files are, and their sha256.

``weights/manifest.toml`` (shipped) lists

* ``[models.NAME]``: shared networks this project trained (AdaIN decoder, CIN base net), with the
  command, steps, data and device that produced them, and
* ``[[presets]]``: one table per user-facing preset (name, display name, method, weights file, sha256,
  source painting, licence note, thumbnail, method-specific ``params``).

More manifests can be layered on top (the bot keeps admin-trained presets in its own data folder), so
adding a preset never needs a code change. Files are verified against their sha256 on first use; a
missing or corrupt file is a :class:`~stylizer.errors.PresetError`, never a crash deep in a network.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from .errors import PresetError

if TYPE_CHECKING:
    import torch

#: The weights folder shipped with the project (repo root / weights), overridable for deployments.
WEIGHTS_DIR = Path(os.environ.get("STYLIZER_WEIGHTS_DIR", Path(__file__).resolve().parent.parent / "weights"))
MANIFEST_NAME = "manifest.toml"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_hashes: dict[tuple[Path, float], str] = {}
_hashes_lock = threading.Lock()


def cached_sha256(path: Path) -> str:
    """:func:`sha256_file`, read once per file and modification time (for entries listed without a hash)."""
    key = (Path(path), Path(path).stat().st_mtime)
    with _hashes_lock:
        if key not in _hashes:
            _hashes[key] = sha256_file(Path(path))
        return _hashes[key]


@dataclass(frozen=True)
class ModelEntry:
    """A shared network trained by this project (e.g. the AdaIN decoder)."""

    name: str
    file: Path
    sha256: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A named style users can pick. ``params`` holds method-specific fields (e.g. the CIN base net)."""

    name: str
    method: str
    file: Path
    display_name: str = ""
    sha256: str = ""
    source: str = ""
    licence: str = ""
    thumbnail: Path | None = None
    enabled: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.display_name or self.name.replace("_", " ").title()


_verified: dict[tuple[Path, str], bool] = {}
_verify_lock = threading.Lock()


def verify_file(path: Path, sha256: str, what: str) -> Path:
    """Check ``path`` exists and (when a hash is recorded) matches it; cached per (path, hash)."""
    if not path.is_file():
        raise PresetError(f"{what}: weights file {path} is missing")
    if sha256:
        key = (path, sha256)
        with _verify_lock:
            if key not in _verified:
                actual = sha256_file(path)
                if actual != sha256:
                    raise PresetError(f"{what}: weights file {path.name} is corrupt (sha256 mismatch)")
                _verified[key] = True
    return path


def load_tensors(path: Path, sha256: str = "", what: str = "weights") -> dict[str, torch.Tensor]:
    """Load a safetensors file as float32 tensors, verifying its hash; corrupt files raise PresetError."""
    from safetensors.torch import load_file  # torch loads only with tensors: the manifest itself is torch-free

    verify_file(path, sha256, what)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PresetError(f"{what}: cannot read {path.name} ({exc})") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def read_metadata(path: Path, what: str) -> dict[str, str]:
    """The safetensors header metadata (arch, training info), read without loading tensors; unreadable files raise
    PresetError."""
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise PresetError(f"{what}: cannot read {path.name} ({exc})") from exc


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None) -> str:
    """Save floating tensors as fp16 safetensors (small, exact enough for inference); returns sha256."""
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    half = {
        k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in tensors.items()
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(half, str(tmp), metadata=dict(metadata or {}))
    os.replace(tmp, path)
    return sha256_file(path)


class Manifest:
    """Models and presets from one or more manifest files; later files override earlier names."""

    def __init__(self, files: Iterable[Path] = ()) -> None:
        self.files = [Path(f) for f in files]
        self.models: dict[str, ModelEntry] = {}
        self.presets: dict[str, Preset] = {}
        for f in self.files:
            if f.is_file():
                self._read(f)

    @classmethod
    def default(cls) -> Manifest:
        """The shipped manifest plus any listed in ``STYLIZER_EXTRA_MANIFESTS`` (os.pathsep separated)."""
        extra = [Path(p) for p in os.environ.get("STYLIZER_EXTRA_MANIFESTS", "").split(os.pathsep) if p]
        return cls([WEIGHTS_DIR / MANIFEST_NAME, *extra])

    def _read(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PresetError(f"manifest {path} is not valid TOML: {exc}") from exc
        base = path.parent
        for name, entry in data.get("models", {}).items():
            info = {k: v for k, v in entry.items() if k not in ("file", "sha256")}
            self.models[name] = ModelEntry(name, base / entry["file"], entry.get("sha256", ""), info)
        for entry in data.get("presets", []):
            try:
                preset = Preset(
                    name=entry["name"],
                    method=entry["method"],
                    file=base / entry["file"],
                    display_name=entry.get("display_name", ""),
                    sha256=entry.get("sha256", ""),
                    source=entry.get("source", ""),
                    licence=entry.get("licence", ""),
                    thumbnail=base / entry["thumbnail"] if entry.get("thumbnail") else None,
                    enabled=entry.get("enabled", True),
                    params=entry.get("params", {}),
                )
            except KeyError as exc:
                raise PresetError(f"manifest {path}: a preset lacks the field {exc}") from exc
            self.presets[preset.name] = preset

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise PresetError(f"model {name!r} is not in the weights manifest (not trained yet?)") from None

    def preset(self, name: str) -> Preset:
        try:
            return self.presets[name]
        except KeyError:
            known = ", ".join(sorted(self.presets)) or "none"
            raise PresetError(f"unknown preset {name!r} (known: {known})") from None

    def enabled_presets(self) -> list[Preset]:
        return [p for p in self.presets.values() if p.enabled]

    def with_presets(self, *presets: Preset) -> Manifest:
        """A copy that also knows ``presets`` (e.g. a freshly trained draft, to render its sample)."""
        copy = Manifest()
        copy.files, copy.models = list(self.files), dict(self.models)
        copy.presets = {**self.presets, **{p.name: p for p in presets}}
        return copy


def write_preset_manifest(path: Path, presets: Iterable[Preset]) -> None:
    """(Re)write a manifest holding only ``[[presets]]`` (used for admin-trained presets)."""
    lines: list[str] = []
    base = path.parent
    for p in presets:
        rel = replace(p, file=_relative(p.file, base), thumbnail=_relative(p.thumbnail, base) if p.thumbnail else None)
        lines.append("[[presets]]")
        for key in ("name", "display_name", "method", "file", "sha256", "source", "licence", "thumbnail", "enabled"):
            value = getattr(rel, key)
            if value not in (None, ""):
                lines.append(f"{key} = {_toml_value(value)}")
        if rel.params:
            lines.append("[presets.params]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in rel.params.items())
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def _relative(path: Path, base: Path) -> Path:
    try:
        return path.resolve().relative_to(base.resolve())
    except ValueError:
        return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
