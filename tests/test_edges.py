"""Clean edges for every fast method (issue 32): a picture stylized as it is and the same picture reflect-padded
by 32 px then cropped back differ in the outer band about as much as inside (ratio <= 1.3), because the facade
gives the networks a reflected margin of their own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import _pattern

from stylizer import image as img
from stylizer.facade import StyleRef, Stylizer, StylizeRequest, reflect_pad
from stylizer.image import edge_margin


def _ratio(stylizer: Stylizer, picture: torch.Tensor, styles: list[StyleRef], method: str, margin=None) -> float:
    def run(t: torch.Tensor) -> torch.Tensor:
        result = stylizer.stylize(StylizeRequest(content=img.tensor_to_pil(t), styles=styles, size=max(t.shape[-2:]),
                                                 method=method, device="cpu", margin=margin))
        return img.pil_to_tensor(result.image)

    plain = run(picture)
    padded = run(F.pad(picture, (32,) * 4, mode="reflect"))[..., 32:-32, 32:-32]
    diff = (plain - padded).abs().mean(1)[0]
    band = torch.ones_like(diff, dtype=torch.bool)
    band[8:-8, 8:-8] = False
    return float(diff[band].mean() / diff[~band].mean())


@pytest.mark.parametrize("method", ["adain", "cin", "johnson"])
def test_border_ratio_of_fast_methods(method: str) -> None:
    stylizer = Stylizer()
    presets = [p for p in stylizer.manifest.enabled_presets() if p.method == method]
    if method == "adain":
        styles = [StyleRef(image=_pattern((96, 96), seed=5))]
    else:
        assert presets, f"no {method} preset shipped"
        styles = [StyleRef(preset=presets[0].name)]
    picture = img.pil_to_tensor(_pattern((160, 120), seed=3))
    assert _ratio(stylizer, picture, styles, method) <= 1.3
    assert _ratio(stylizer, picture, styles, method, margin=0) > 1.3  # what the margin fixes


def test_margin_rule_and_padding() -> None:
    assert edge_margin((120, 160)) == 32 and edge_margin((384, 512)) == 32 and edge_margin((3000, 4000)) == 64
    x = torch.rand(1, 3, 5, 4)
    padded = reflect_pad(x, 9)
    assert padded.shape[-2:] == (23, 22) and torch.equal(padded[..., 9:-9, 9:-9], x)
