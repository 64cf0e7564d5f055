"""Noise conditioning augmentation of the upsampled conditioning video (paper sec. 2.5; math sec. 8)."""

from __future__ import annotations

import math

import pytest
import torch

from imagen_video.diffusion import DiffusionConfig, alpha_sigma, logsnr_from_t, noise_augment, t_from_logsnr

SHAPE = (5, 3, 2, 4, 4)  # (B, C, T, H, W)


def cond() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_training_draws_level_then_noise_through_schedule() -> None:
    config = DiffusionConfig(aug_t_max=0.4)
    c = cond()
    g = torch.Generator().manual_seed(3)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    c_aug, aug_logsnr = noise_augment(c, config=config, training=True, generator=g)
    t_a = 0.4 * torch.rand((SHAPE[0],), generator=replay)
    noise = torch.randn(SHAPE, generator=replay)
    torch.testing.assert_close(aug_logsnr, logsnr_from_t(t_a, config.schedule))
    alpha, sigma = alpha_sigma(aug_logsnr.reshape(-1, 1, 1, 1, 1))
    torch.testing.assert_close(c_aug, alpha * c + sigma * noise)


def test_training_levels_cover_zero_to_t_max() -> None:
    config = DiffusionConfig()  # aug_t_max = 0.5: log-SNR in [0, 20]
    _, aug_logsnr = noise_augment(
        torch.zeros(4000, 1, 1, 1, 1),
        config=config,
        training=True,
        generator=torch.Generator().manual_seed(1),
    )
    t_a = t_from_logsnr(aug_logsnr.double(), config.schedule)
    assert float(t_a.min()) >= 0.0 and float(t_a.max()) <= 0.5 + 1e-6
    assert abs(float(t_a.mean()) - 0.25) < 0.012  # U(0, 0.5): sd of mean 0.0023
    # The paper's sampling levels (SNR 3 and 5) fall inside the training range.
    assert 0.0 < float(t_from_logsnr(math.log(3.0), config.schedule)) < 0.5


def test_sampling_uses_fixed_level() -> None:
    config = DiffusionConfig()
    c = cond()
    g = torch.Generator().manual_seed(4)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    level = math.log(3.0)
    c_aug, aug_logsnr = noise_augment(c, config=config, training=False, aug_logsnr=level, generator=g)
    assert aug_logsnr.shape == (SHAPE[0],) and torch.all(
        aug_logsnr == torch.tensor(level, dtype=torch.float32)
    )
    alpha, sigma = math.sqrt(0.75), math.sqrt(0.25)  # SNR 3: alpha^2 = 3/4
    torch.testing.assert_close(c_aug, alpha * c + sigma * torch.randn(SHAPE, generator=replay))


def test_sampling_without_level_and_bad_shape_raise() -> None:
    with pytest.raises(ValueError, match="fixed aug_logsnr"):
        noise_augment(cond(), config=DiffusionConfig(), training=False)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        noise_augment(cond(), config=DiffusionConfig(), training=False, aug_logsnr=torch.zeros(3))
