"""Forward process and v / eps / x conversions (paper secs. 2.1, 2.4; docs/math.md sec. 2)."""

from __future__ import annotations

import itertools

import pytest
import torch

from imagen_video.diffusion import (
    PREDICTIONS,
    alpha_sigma,
    broadcast_logsnr,
    convert_prediction,
    eps_from_v,
    eps_from_x,
    q_sample,
    to_x,
    v_from,
    v_from_eps,
    v_from_x,
    x_from_eps,
    x_from_v,
)

SHAPE = (4, 3, 2, 5, 6)  # (B, C, T, H, W)
# Round trips over logsnr in [-8, 8]; x_from_eps divides by alpha (1/alpha ~ 55 at -8), so float32
# tolerances are stated per conversion: 1e-9 in float64, 5e-5 (5e-4 through 1/alpha) in float32.
LOGSNR = [-8.0, -1.5, 0.7, 8.0]


def make(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(SHAPE, generator=g, dtype=dtype) * 2 - 1
    eps = torch.randn(SHAPE, generator=g, dtype=dtype)
    return x, eps, torch.tensor(LOGSNR, dtype=dtype)


def test_q_sample_and_v_closed_forms_per_sample() -> None:
    x, eps, logsnr = make(torch.float64)
    z = q_sample(x, logsnr, eps)
    v = v_from(x, eps, logsnr)
    for b, l in enumerate(LOGSNR):
        alpha, sigma = alpha_sigma(l)
        torch.testing.assert_close(z[b], alpha * x[b] + sigma * eps[b], atol=1e-12, rtol=0)
        torch.testing.assert_close(v[b], alpha * eps[b] - sigma * x[b], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "dtype,atol,atol_div_alpha", [(torch.float64, 1e-9, 1e-9), (torch.float32, 5e-5, 5e-4)]
)
def test_round_trips(dtype: torch.dtype, atol: float, atol_div_alpha: float) -> None:
    x, eps, logsnr = make(dtype)
    z = q_sample(x, logsnr, eps)
    v = v_from(x, eps, logsnr)
    torch.testing.assert_close(x_from_v(z, v, logsnr), x, atol=atol, rtol=0)
    torch.testing.assert_close(eps_from_v(z, v, logsnr), eps, atol=atol, rtol=0)
    torch.testing.assert_close(eps_from_x(z, x, logsnr), eps, atol=atol, rtol=0)
    torch.testing.assert_close(v_from_x(z, x, logsnr), v, atol=atol, rtol=0)
    torch.testing.assert_close(x_from_eps(z, eps, logsnr), x, atol=atol_div_alpha, rtol=0)
    torch.testing.assert_close(v_from_eps(z, eps, logsnr), v, atol=atol_div_alpha, rtol=0)


def test_convert_prediction_all_pairs_consistent() -> None:
    x, eps, logsnr = make(torch.float64)
    z = q_sample(x, logsnr, eps)
    truth = {"x": x, "eps": eps, "v": v_from(x, eps, logsnr)}
    for source, target in itertools.product(PREDICTIONS, PREDICTIONS):
        out = convert_prediction(truth[source], z, logsnr, source, target)
        torch.testing.assert_close(out, truth[target], atol=1e-9, rtol=0)
    for p in PREDICTIONS:
        torch.testing.assert_close(to_x(truth[p], z, logsnr, p), x, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="allowed: v, eps, x"):
        to_x(x, z, logsnr, "score")


def test_bf16_prediction_is_converted_in_float32() -> None:
    x, eps, logsnr = make(torch.float32)
    z = q_sample(x, logsnr, eps)
    v = v_from(x, eps, logsnr).to(torch.bfloat16)
    out = to_x(v, z, logsnr, "v")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x, atol=2e-2, rtol=0)  # bf16 has 8 mantissa bits


def test_broadcasting_scalar_and_batch() -> None:
    x, eps, _ = make(torch.float64)
    z_scalar = q_sample(x, 0.3, eps)
    z_batch = q_sample(x, torch.full((SHAPE[0],), 0.3, dtype=torch.float64), eps)
    torch.testing.assert_close(z_scalar, z_batch, atol=0, rtol=0)
    assert broadcast_logsnr(torch.zeros(4), x).shape == (4, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        q_sample(x, torch.zeros(3), eps)
