"""Progressive- and guidance-distillation targets (paper sec. 2.7; docs/math.md secs. 10-11)."""

from __future__ import annotations

import pytest
import torch

from imagen_video.diffusion import (
    ScheduleConfig,
    ddim_step,
    distillation_target,
    guided_target,
    student_logsnrs,
    student_times,
)
from imagen_video.diffusion.schedule import time_grid
from imagen_video.samplers import ddim_coefficients

CFG = ScheduleConfig()
SHAPE = (4, 2, 3, 4, 4)  # (B, C, T, H, W)


def teacher(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
    """An arbitrary nonlinear x predictor that depends on the noise level."""
    l = logsnr.reshape(-1, 1, 1, 1, 1)
    return torch.tanh(1.3 * z + 0.1 * l) + 0.2 * torch.sin(3 * z) * torch.sigmoid(l)


@pytest.mark.parametrize(
    "dtype,tol,t_start",
    [(torch.float64, 1e-10, 1.0), (torch.float32, 2e-5, 1.0), (torch.float64, 1e-10, 0.3)],
)
def test_one_student_step_lands_on_teacher_two_steps(dtype: torch.dtype, tol: float, t_start: float) -> None:
    """At every i = 1..N, including t'' = 0, ddim_step(x_target) from z_t equals the teacher's z_t''
    (on the full grid and on a truncated one)."""
    n_student = 4
    i = torch.tensor([1, 2, 3, 4])  # one sample per student step, i = 1 has t'' = 0
    l_t, l_t1, l_t2 = (v.to(dtype) for v in student_logsnrs(i, n_student, CFG, t_start))
    assert float(l_t2[0]) == pytest.approx(20.0, abs=1e-4)  # t'' = 0: logsnr_max, sigma_0 > 0
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype) * 2 - 1
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=dtype)
    alpha = torch.sigmoid(l_t).sqrt().reshape(-1, 1, 1, 1, 1)
    z_t = alpha * x + torch.sigmoid(-l_t).sqrt().reshape(-1, 1, 1, 1, 1) * eps
    x_target = distillation_target(z_t, l_t, l_t1, l_t2, teacher)
    z_t1 = ddim_step(teacher(z_t, l_t), z_t, l_t, l_t1)
    z_t2 = ddim_step(teacher(z_t1, l_t1), z_t1, l_t1, l_t2)
    student = ddim_step(x_target, z_t, l_t, l_t2)
    assert x_target.dtype == dtype
    torch.testing.assert_close(student, z_t2, atol=tol, rtol=0)


def test_ddim_step_matches_sampler_coefficients() -> None:
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c_z, c_x = ddim_coefficients(-3.0, 1.5)
    torch.testing.assert_close(ddim_step(x, z, -3.0, 1.5), c_z * z + c_x * x, atol=1e-12, rtol=0)


def test_student_times() -> None:
    t, t1, t2 = student_times(torch.tensor([1, 8]), 8)
    assert t.tolist() == [0.125, 1.0] and t1.tolist() == [0.0625, 0.9375] and t2.tolist() == [0.0, 0.875]
    with pytest.raises(ValueError, match="n_student"):
        student_times(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="t_start"):
        student_times(torch.tensor([1]), 4, 0.0)


@pytest.mark.parametrize("t_start", [1.0, 0.3])
def test_student_times_walk_the_sampler_grid(t_start: float) -> None:
    """Student step i goes from grid point N - i to N - i + 1 of the N-step sampler's time grid, the
    teacher's midpoint being the 2N-step grid's point in between (a truncated start included)."""
    n = 4
    t, t1, t2 = student_times(torch.arange(1, n + 1), n, t_start)
    student_grid, teacher_grid = time_grid(n, t_start=t_start), time_grid(2 * n, t_start=t_start)
    torch.testing.assert_close(t, student_grid.flip(0)[1:], atol=1e-15, rtol=0)
    torch.testing.assert_close(t2, student_grid.flip(0)[:-1], atol=1e-15, rtol=0)
    torch.testing.assert_close(t1, teacher_grid.flip(0)[1::2], atol=1e-15, rtol=0)


def test_guided_target_closed_form() -> None:
    x_c = torch.full((2, 1, 1, 2, 2), 0.5)
    x_u = torch.full((2, 1, 1, 2, 2), -0.25)
    out = guided_target(x_c, x_u, torch.tensor([0.0, 2.0]))  # per-sample w, eq. 5 convention
    assert out[0].unique().tolist() == [0.5]
    assert out[1].unique().tolist() == [3 * 0.5 - 2 * -0.25]
    torch.testing.assert_close(guided_target(x_c, x_u, 1.0), 2 * x_c - x_u)
