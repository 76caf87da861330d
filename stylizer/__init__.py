"""Neural style transfer in plain PyTorch: AdaIN, CIN, Johnson and Gatys behind one facade.

>>> from stylizer import stylize
>>> result = stylize("photo.jpg", "painting.jpg", method="adain", size=512)
>>> result.image.save("out.jpg")
"""

from .color import ColorMode
from .errors import Cancelled, ImageError, MethodError, PresetError, StylizerError
from .facade import StyleRef, Stylizer, StylizeRequest, StylizeResult, default_stylizer, stylize
from .manifest import Manifest, Preset
from .methods import Progress

__all__ = [
    "Cancelled",
    "ColorMode",
    "ImageError",
    "Manifest",
    "MethodError",
    "Preset",
    "PresetError",
    "Progress",
    "StyleRef",
    "StylizeRequest",
    "StylizeResult",
    "Stylizer",
    "StylizerError",
    "default_stylizer",
    "stylize",
]
