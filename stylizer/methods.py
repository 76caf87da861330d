"""The method registry and the contract every method implements.

A method is a class with a ``name`` and a ``run(job) -> tensor``; the facade prepares a
:class:`MethodJob` (content and style tensors on the device, weights, strength, callbacks) and
post-processes the result, so methods hold only their own idea. Built-in methods are imported lazily
by dotted path, so ``import stylizer`` stays cheap and a method whose module is missing simply reports
itself unavailable. New methods register with :func:`register` and appear in the CLI and the bot
without touching either.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from PIL import Image

from .errors import Cancelled, MethodError
from .manifest import Manifest, Preset


@dataclass(frozen=True)
class Progress:
    """A progress report: ``step`` of ``total`` in ``stage``; Gatys adds the loss and sometimes a preview."""

    stage: str
    step: int
    total: int
    loss: float | None = None
    preview: Image.Image | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


ProgressFn = Callable[[Progress], None]


@dataclass
class StyleInput:
    """One ingredient of the style mix: a picture (tensor in [0, 1]) or a preset, and its weight."""

    weight: float
    image: torch.Tensor | None = None
    preset: Preset | None = None
    key: str = ""  # cache key: image digest or preset name


@dataclass
class MethodJob:
    """Everything a method needs for one stylization, already on ``device``."""

    content: torch.Tensor  # (1, 3, H, W) in [0, 1]
    styles: list[StyleInput]  # weights sum to 1
    device: torch.device
    manifest: Manifest
    strength: float = 1.0
    steps: int | None = None
    seed: int | None = None
    mixed_precision: bool = True
    progress: ProgressFn | None = None
    cancel: threading.Event | None = None
    options: dict[str, object] = field(default_factory=dict)

    def report(self, stage: str, step: int, total: int, loss: float | None = None,
               preview: Image.Image | None = None) -> None:
        """Send progress (if anyone listens) and stop early if the caller cancelled."""
        self.check_cancelled()
        if self.progress is not None:
            self.progress(Progress(stage, step, total, loss, preview))

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")

    @property
    def wants_preview(self) -> bool:
        return bool(self.options.get("preview"))


@runtime_checkable
class Method(Protocol):
    name: str
    #: one line for help texts and the bot's menus
    description: str
    #: can take arbitrary style pictures (else presets only)
    accepts_images: bool
    #: slow, high quality (the bot runs it as "high quality")
    slow: bool
    # Optional: ``tileable = True`` when the method normalises only through stylizer.features, so the
    # facade may run large pictures tile by tile (stylizer.tiling); absent means False.

    def available(self, manifest: Manifest) -> bool:
        """True when the method can run (e.g. its trained weights are present)."""
        ...

    def run(self, job: MethodJob) -> torch.Tensor:
        """Return the stylized image (1, 3, H, W) in [0, 1] on any device."""
        ...


BUILTIN: dict[str, str] = {
    "adain": "stylizer.adain:AdaINMethod",
    "cin": "stylizer.cin:CINMethod",
    "johnson": "stylizer.johnson:JohnsonMethod",
    "gatys": "stylizer.gatys:GatysMethod",
}

_factories: dict[str, Callable[[], Method]] = {}
_instances: dict[str, Method] = {}
_lock = threading.Lock()


def register(name: str, factory: Callable[[], Method]) -> None:
    """Add (or replace) a method; ``factory`` is called once, on first use."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def method_names() -> list[str]:
    return list(dict.fromkeys([*BUILTIN, *_factories]))


def get_method(name: str) -> Method:
    """The (shared) method instance for ``name``; unknown or unimportable methods raise MethodError."""
    with _lock:
        if name in _instances:
            return _instances[name]
        factory = _factories.get(name)
        if factory is None:
            if name not in BUILTIN:
                raise MethodError(f"unknown method {name!r} (known: {', '.join(method_names())})")
            module_name, _, cls_name = BUILTIN[name].partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), cls_name)
            except (ImportError, AttributeError) as exc:
                raise MethodError(f"method {name!r} is not available in this build") from exc
        _instances[name] = factory()
        return _instances[name]


def available_methods(manifest: Manifest) -> list[str]:
    """Methods that can run right now with this manifest (importable and weights present)."""
    names = []
    for name in method_names():
        try:
            if get_method(name).available(manifest):
                names.append(name)
        except MethodError:
            continue
    return names
