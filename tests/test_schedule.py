"""Cosine log-SNR schedule (paper sec. 2.1; docs/math.md sec. 1): closed forms, endpoints, inverses."""

from __future__ import annotations

import math

import pytest
import torch

from imagen_video.diffusion import (
    ScheduleConfig,
    alpha_sigma,
    logsnr_from_t,
    logsnr_grid,
    shifted_schedule,
    snr_trunc_weight,
    t_from_logsnr,
    time_grid,
)

CFG = ScheduleConfig()
# Stated float32 tolerances: endpoints within 1e-5 of +-20 (the naive -2 log tan(a t + b) gives
# -20.0011 in float32 at t = 1; the mirrored form used near t = 1 gives -20.0), round trips 2e-6 in t.
F32_ENDPOINT_ATOL = 1e-5
F32_T_ATOL = 2e-6


def naive_logsnr(t: torch.Tensor, lmin: float = -20.0, lmax: float = 20.0) -> torch.Tensor:
    """docs/math.md sec. 1 verbatim, used only in float64 as the reference."""
    b = math.atan(math.exp(-lmax / 2))
    a = math.atan(math.exp(-lmin / 2)) - b
    return -2.0 * torch.log(torch.tan(a * t + b))


def test_matches_closed_form_in_float64() -> None:
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(logsnr_from_t(t, CFG), naive_logsnr(t), atol=1e-9, rtol=0)


def test_endpoints_float64_and_float32() -> None:
    ends64 = logsnr_from_t(torch.tensor([0.0, 1.0], dtype=torch.float64), CFG)
    assert ends64.tolist() == pytest.approx([20.0, -20.0], abs=1e-12)
    ends32 = logsnr_from_t(torch.tensor([0.0, 1.0], dtype=torch.float32), CFG)
    assert ends32.dtype == torch.float32
    assert ends32.tolist() == pytest.approx([20.0, -20.0], abs=F32_ENDPOINT_ATOL)


def test_monotone_decreasing_and_antisymmetric() -> None:
    t = torch.linspace(0, 1, 513, dtype=torch.float64)
    logsnr = logsnr_from_t(t, CFG)
    assert bool((logsnr[1:] < logsnr[:-1]).all())
    # Symmetric limits make the cosine schedule odd about t = 1/2: logsnr(1 - t) = -logsnr(t).
    torch.testing.assert_close(logsnr.flip(0), -logsnr, atol=1e-9, rtol=0)


def test_alpha_sigma_unit_norm_and_snr() -> None:
    logsnr = torch.linspace(-30, 30, 601, dtype=torch.float64)
    alpha, sigma = alpha_sigma(logsnr)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(logsnr), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.log(alpha**2 / sigma**2), logsnr, atol=1e-9, rtol=0)
    a32, s32 = alpha_sigma(logsnr.float())
    torch.testing.assert_close(a32**2 + s32**2, torch.ones_like(a32), atol=1e-6, rtol=0)
    # At logsnr_max = 20: sigma_0 = sqrt(sigmoid(-20)) ~ 4.54e-5, not 0 (docs/math.md sec. 10).
    assert alpha_sigma(20.0)[1].item() == pytest.approx(math.sqrt(1 / (1 + math.exp(20))), rel=1e-12)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, F32_T_ATOL)])
def test_t_logsnr_round_trip(dtype: torch.dtype, atol: float) -> None:
    t = torch.linspace(0, 1, 1001, dtype=dtype)
    torch.testing.assert_close(t_from_logsnr(logsnr_from_t(t, CFG), CFG), t, atol=atol, rtol=0)
    logsnr = torch.linspace(-20, 20, 401, dtype=torch.float64)
    torch.testing.assert_close(logsnr_from_t(t_from_logsnr(logsnr, CFG), CFG), logsnr, atol=1e-9, rtol=0)


def test_shift_adds_constant_and_inverts() -> None:
    cfg = shifted_schedule(res=256, ref_res=64)
    assert cfg.shift == pytest.approx(2 * math.log(64 / 256))
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(logsnr_from_t(t, cfg), logsnr_from_t(t, CFG) + cfg.shift, atol=1e-12, rtol=0)
    torch.testing.assert_close(t_from_logsnr(logsnr_from_t(t, cfg), cfg), t, atol=1e-9, rtol=0)


def test_custom_limits() -> None:
    cfg = ScheduleConfig(logsnr_min=-10.0, logsnr_max=5.0)
    ends = logsnr_from_t(torch.tensor([0.0, 1.0], dtype=torch.float64), cfg)
    assert ends.tolist() == pytest.approx([5.0, -10.0], abs=1e-12)


def test_time_grid_and_logsnr_grid() -> None:
    grid = time_grid(4)
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert logsnr_grid(4, CFG).tolist() == pytest.approx(logsnr_from_t(grid, CFG).tolist())
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="steps"):
            time_grid(bad)  # type: ignore[arg-type]
    assert time_grid(4, t_start=0.5).tolist() == [0.5, 0.375, 0.25, 0.125, 0.0]  # truncated start
    truncated = logsnr_from_t(time_grid(4, t_start=0.5), CFG)
    assert logsnr_grid(4, CFG, 0.5).tolist() == pytest.approx(truncated.tolist())
    for bad_start in (0.0, 1.5):
        with pytest.raises(ValueError, match="t_start"):
            time_grid(4, t_start=bad_start)


def test_snr_trunc_weight() -> None:
    logsnr = torch.tensor([-3.0, 0.0, 2.0], dtype=torch.float64)
    assert snr_trunc_weight(logsnr).tolist() == pytest.approx([1.0, 1.0, math.exp(2.0)])
