"""Fréchet distance (FID/FVD core, docs/math.md sec. 13): closed forms and invariants, float64."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from imagen_video.metrics import feature_stats, frechet_distance, frechet_distance_from_stats


def _random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def _scipy_reference(mu1, s1, mu2, s2) -> float:
    """The TTUR / StyleGAN formula with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_distance_of_a_set_to_itself_is_zero() -> None:
    feats = np.random.default_rng(0).normal(size=(64, 12)) * 3 + 1
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_gaussians_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 4.0, size=6), rng.uniform(0.1, 4.0, size=6)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    got = frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("singular", [False, True])
def test_commuting_full_covariances_closed_form(singular: bool) -> None:
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: tr sqrt(S1 S2) = sum sqrt(a b); also with zero eigenvalues."""
    rng = np.random.default_rng(2)
    q = _random_orthogonal(8, rng)
    a, b = rng.uniform(0.2, 3.0, size=8), rng.uniform(0.2, 3.0, size=8)
    if singular:  # rank-deficient, as with fewer samples than feature dimensions
        a[:3], b[2:5] = 0.0, 0.0
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()
    got = frechet_distance_from_stats(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    # zero eigenvalues carry round-off ~1e-16 whose square roots are ~1e-8 (sqrt of machine epsilon):
    # every route (eigh here, scipy sqrtm, eigvals of S1 S2) is that accurate and no more
    assert got == pytest.approx(expected, rel=1e-6 if singular else 1e-10)


def test_matches_scipy_sqrtm_on_non_commuting_covariances() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 10)), rng.normal(size=(150, 10)) @ rng.normal(size=(10, 10))
    stats = (*feature_stats(x), *feature_stats(y))
    assert frechet_distance_from_stats(*stats) == pytest.approx(_scipy_reference(*stats), rel=1e-8)


def test_symmetric_and_nonnegative_with_singular_sample_covariances() -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):  # 7 samples in 20 dimensions: both covariances have rank <= 6
        a, b = rng.normal(size=(7, 20)), rng.normal(size=(7, 20)) * 2 + 0.5
        d_ab, d_ba = frechet_distance(a, b), frechet_distance(b, a)
        assert d_ab > 0
        assert d_ab == pytest.approx(d_ba, rel=1e-7)  # singular: accurate to ~sqrt(machine epsilon)


def test_translation_adds_squared_norm() -> None:
    """Shifting a set by c changes only the means: d(X, X + c) = ||c||^2 exactly."""
    feats = np.random.default_rng(5).normal(size=(40, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(feats, feats + shift) == pytest.approx(float(shift @ shift), rel=1e-10)


def test_feature_stats_and_torch_input() -> None:
    feats = torch.randn(30, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float32)
    mu, sigma = feature_stats(feats)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    np.testing.assert_allclose(mu, feats.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.double().numpy(), rowvar=False), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: frechet_distance(np.ones((1, 3)), np.ones((4, 3))), "at least 2 samples"),
        (lambda: frechet_distance(np.zeros((4, 3)), np.zeros((4, 2))), "dimension"),
        (lambda: frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "shape"),
        (
            lambda: frechet_distance_from_stats(np.zeros(2), [[1, 1], [0, 1]], np.zeros(2), np.eye(2)),
            "symmetric",
        ),
        (
            lambda: frechet_distance_from_stats(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2)),
            "semi-definite",
        ),
        (lambda: frechet_distance(np.full((3, 2), np.nan), np.ones((3, 2))), "NaN"),
    ],
)
def test_bad_input_fails_clearly(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
