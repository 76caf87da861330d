"""Neural style transfer in plain PyTorch: AdaIN, CIN, Johnson and Gatys behind one facade.

>>> from stylizer import stylize
>>> result = stylize("photo.jpg", "painting.jpg", method="adain", size=512)
>>> result.image.save("out.jpg")

The names below load on first use (PEP 562), not with the package: ``python -m stylizer`` runs this file
first, and the CLI's OpenVINO path (:mod:`stylizer.onnx_engine`) must start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "Cancelled": "errors", "ImageError": "errors", "MethodError": "errors", "PresetError": "errors",
    "StylizerError": "errors",
    "ColorMode": "color",
    "StyleRef": "facade", "Stylizer": "facade", "StylizeRequest": "facade", "StylizeResult": "facade",
    "default_stylizer": "facade", "stylize": "facade",
    "Manifest": "manifest", "Preset": "manifest",
    "Progress": "methods",
}

__all__ = sorted(_EXPORTS)

def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stylizer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
