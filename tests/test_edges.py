"""Clean edges for every fast method (issue 32): a photo stylized as it is and the same photo reflect-padded
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
def test_border_ratio_of_fast_methods(method: str, shared_data) -> None:
    """CIN and Johnson on a synthetic picture; AdaIN on held-out photos at the same size, as the bar is measured:
    a picture of sinusoids reflected at its edges makes seams no photo has, and issue 32's decoder, trained on
    correlated AdaIN, measured 1.13-1.40 on such pictures against 0.85-1.23 on held-out photos at this size (the
    decoder before it 0.81-1.20 / 0.76-1.21; at 512 px on 5 held-out photos 1.105 median, 1.207 worst)."""
    from stylizer.train.data import split_content

    stylizer = Stylizer()
    presets = [p for p in stylizer.manifest.enabled_presets() if p.method == method]
    pattern = _pattern((160, 120), seed=3)
    if method == "adain":
        styles = [StyleRef(image=_pattern((96, 96), seed=5))]
        pictures = [img.resize_long_side(img.load_image(photo), 160)
                    for photo in split_content(shared_data / "content")[1][:2]]
    else:
        assert presets, f"no {method} preset shipped"
        styles = [StyleRef(preset=presets[0].name)]
        pictures = [pattern]
    for picture in pictures:
        assert _ratio(stylizer, img.pil_to_tensor(picture), styles, method) <= 1.3
    # what the margin fixes, on the pattern (a photo this small may pass without it: 1.07 on the first one)
    assert _ratio(stylizer, img.pil_to_tensor(pattern), styles, method, margin=0) > 1.3


def test_margin_rule_and_padding() -> None:
    assert edge_margin((120, 160)) == 32 and edge_margin((384, 512)) == 32 and edge_margin((3000, 4000)) == 64
    x = torch.rand(1, 3, 5, 4)
    padded = reflect_pad(x, 9)
    assert padded.shape[-2:] == (23, 22) and torch.equal(padded[..., 9:-9, 9:-9], x)
