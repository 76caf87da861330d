"""Colour preservation maths: YCbCr round trips, luminance transfer and mean/covariance matching."""

from __future__ import annotations

import pytest
import torch

from stylizer.color import (
    ColorMode,
    color_moments,
    match_color,
    mix_color_moments,
    preserve_color,
    rgb_to_ycbcr,
    transfer_luminance,
    ycbcr_to_rgb,
)


def _mid_range(seed: int, shape=(1, 3, 24, 32), spread: float = 0.15) -> torch.Tensor:
    """Random colours well inside [0, 1], so clamping never hides an error."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 1, 1, generator=g) * 0.3 + 0.35
    return (base + spread * (torch.rand(shape, generator=g) - 0.5)).clamp(0, 1)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.reshape(3, -1).double()
    centred = flat - flat.mean(1, keepdim=True)
    return flat.mean(1), centred @ centred.T / flat.shape[1]


def test_parse() -> None:
    assert ColorMode.parse(True) is ColorMode.LUMINANCE
    assert ColorMode.parse(False) is ColorMode.NONE
    assert ColorMode.parse(None) is ColorMode.NONE
    assert ColorMode.parse("Histogram") is ColorMode.HISTOGRAM
    assert ColorMode.parse(ColorMode.LUMINANCE) is ColorMode.LUMINANCE
    with pytest.raises(ValueError):
        ColorMode.parse("sepia")


def test_ycbcr_known_values_and_round_trip() -> None:
    colours = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    x = colours.T.reshape(1, 3, 2, 2)
    ycc = rgb_to_ycbcr(x)
    y, cb, cr = ycc[0, 0].flatten(), ycc[0, 1].flatten(), ycc[0, 2].flatten()
    torch.testing.assert_close(y, torch.tensor([1.0, 0.0, 0.299, 0.5]))
    # Greys have no chroma; red has strong positive Cr and negative Cb.
    torch.testing.assert_close(cb[[0, 1, 3]], torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(cr[[0, 1, 3]], torch.zeros(3), atol=1e-6, rtol=0)
    assert cr[2] == pytest.approx(0.5) and cb[2] < -0.1
    noise = torch.rand(2, 3, 9, 7)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(noise)), noise, atol=1e-5, rtol=0)


def test_luminance_transfer_keeps_output_luma_and_content_chroma() -> None:
    stylized, content = _mid_range(1), _mid_range(2)
    out = transfer_luminance(stylized, content)
    out_ycc, sty_ycc, con_ycc = rgb_to_ycbcr(out), rgb_to_ycbcr(stylized), rgb_to_ycbcr(content)
    torch.testing.assert_close(out_ycc[:, 0], sty_ycc[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_ycc[:, 1:], con_ycc[:, 1:], atol=1e-5, rtol=0)


def test_luminance_transfer_resizes_content() -> None:
    stylized = _mid_range(3, shape=(1, 3, 24, 32))
    content = torch.full((1, 3, 48, 64), 0.5)
    content[:, 0] = 0.7  # uniformly reddish
    out = transfer_luminance(stylized, content)
    assert out.shape == stylized.shape
    torch.testing.assert_close(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content[..., ::2, ::2])[:, 1:],
                               atol=1e-4, rtol=0)


def test_luminance_of_grey_content_makes_grey_output() -> None:
    out = transfer_luminance(_mid_range(4), torch.full((1, 3, 24, 32), 0.4))
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], out[:, 2], atol=1e-5, rtol=0)


def test_match_color_moves_mean_and_covariance() -> None:
    source = _mid_range(5, spread=0.2)
    # A target with correlated channels and a different mean, still well inside [0, 1].
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.2, 0.8, 0.1], [0.0, 0.5, 0.6]])
    target = (torch.einsum("ij,njhw->nihw", mix, _mid_range(6, shape=(1, 3, 40, 30), spread=0.2)) * 0.6 + 0.1)
    assert float(target.min()) > 0.0 and float(target.max()) < 1.0
    out = match_color(source, target)
    assert out.shape == source.shape and out.dtype == source.dtype
    (mu_o, cov_o), (mu_t, cov_t) = _stats(out), _stats(target)
    torch.testing.assert_close(mu_o, mu_t, atol=1e-4, rtol=0)
    torch.testing.assert_close(cov_o, cov_t, atol=1e-5, rtol=1e-2)


def test_match_color_identity_and_clamp() -> None:
    x = _mid_range(7)
    torch.testing.assert_close(match_color(x, x), x, atol=1e-4, rtol=0)
    loud = torch.rand(1, 3, 16, 16)
    out = match_color(torch.rand(1, 3, 16, 16) * 0.1, loud)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_match_color_survives_flat_source() -> None:
    """A single-colour style has a singular covariance: the eps regulariser keeps Cholesky alive."""
    out = match_color(torch.full((1, 3, 8, 8), 0.3), _mid_range(8))
    assert torch.isfinite(out).all()


def test_preserve_color_dispatch() -> None:
    stylized, content = _mid_range(9), _mid_range(10)
    assert preserve_color(stylized, content, ColorMode.NONE) is stylized
    torch.testing.assert_close(preserve_color(stylized, content, ColorMode.LUMINANCE),
                               transfer_luminance(stylized, content))
    torch.testing.assert_close(preserve_color(stylized, content, ColorMode.HISTOGRAM),
                               match_color(stylized, content))


def test_match_color_to_a_grey_style_under_bf16_autocast() -> None:
    """A black-and-white style picture has a rank-1 colour covariance; the moments are taken in float32 even under
    autocast (a bf16 product left it indefinite and Cholesky failed mid-training), and gradients flow through."""
    grey = _mid_range(11, spread=0.3)[:, :1].expand(1, 3, 24, 32).contiguous()
    source = _mid_range(12).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = match_color(source.to(torch.bfloat16), grey)
    (out.float() * _mid_range(13)).sum().backward()  # (a plain sum is fixed by the target mean: no gradient)
    assert torch.isfinite(source.grad).all() and source.grad.abs().sum() > 0
    channels = out.detach().float()[0].flatten(1)
    assert float((channels[0] - channels[1]).abs().max()) < 0.05  # the output is grey too


def test_mixed_colour_moments_are_the_pooled_pixels() -> None:
    a, b = _mid_range(14), _mid_range(15) + 0.2
    mean, cov = mix_color_moments([(1.0, *color_moments(a)), (3.0, *color_moments(b))])
    pooled = torch.cat([a, b, b, b], dim=-1)  # the same pixels, a once and b three times
    p_mean, p_cov = color_moments(pooled)
    torch.testing.assert_close(mean, p_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, p_cov, atol=1e-5, rtol=1e-4)
