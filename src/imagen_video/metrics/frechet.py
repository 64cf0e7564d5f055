"""The Fréchet distance between Gaussians fitted to two feature sets (FID, FVD), in float64.

For feature sets A and B with means mu_1, mu_2 and covariances S_1, S_2 (Heusel et al. 2017;
Unterthiner et al. 2019; docs/math.md sec. 13):

    d^2 = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2}).

The trace of the matrix square root is computed by a symmetric eigen-decomposition route: with
R = S_1^{1/2} (from ``eigh`` of S_1), the product R S_2 R is symmetric positive semi-definite and has
the same eigenvalues as S_1 S_2, so tr((S_1 S_2)^{1/2}) = sum_i sqrt(lambda_i(R S_2 R)). Unlike
``scipy.linalg.sqrtm`` on the non-symmetric product S_1 S_2, this never produces imaginary parts and
needs no diagonal offset for singular covariances (fewer samples than feature dimensions, as in FVD
with a few hundred clips and 400-d features). The only correction: eigenvalues below zero, which
arise from float64 round-off alone (magnitude about ``EIGENVALUE_FLOOR_REL`` times the largest),
are clamped to zero before the square root; a distance below zero from the same round-off is
returned as 0. With singular covariances the result is accurate to about sqrt(machine epsilon)
relative (the square root of an eigenvalue that should be 0 but is 1e-16 is 1e-8); scipy's sqrtm and
torchmetrics' eigenvalue route share this limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Eigenvalues are floored at 0; anything more negative than this fraction of the largest eigenvalue
# cannot be round-off and means the input was not a covariance matrix.
EIGENVALUE_FLOOR_REL = 1e-6


def _as_float64_2d(feats: Any, name: str) -> np.ndarray:
    """Convert a (N, D) numpy array or torch tensor to float64 numpy, validating the shape."""
    if hasattr(feats, "detach"):
        feats = feats.detach().to("cpu").double().numpy()
    array = np.asarray(feats, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {tuple(array.shape)}")
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples to estimate a covariance, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of a (N, D) feature set, in float64 (sec. 13)."""
    array = _as_float64_2d(feats, "feats")
    mu = array.mean(axis=0)  # (D,)
    sigma = np.cov(array, rowvar=False, ddof=1).reshape(array.shape[1], array.shape[1])  # (D, D)
    return mu, sigma


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix via ``eigh`` (round-off floored)."""
    eigvals, eigvecs = np.linalg.eigh(sigma)  # (D,), (D, D)
    _check_floor(eigvals, name)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def _check_floor(eigvals: np.ndarray, name: str) -> None:
    scale = max(float(np.abs(eigvals).max(initial=0.0)), 1e-300)
    if eigvals.min(initial=0.0) < -EIGENVALUE_FLOOR_REL * scale:
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {eigvals.min():.3g})")


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S_1 S_2)^{1/2}) for PSD S_1, S_2, through the symmetric matrix S_1^{1/2} S_2 S_1^{1/2}."""
    root1 = _psd_sqrt(sigma1, "sigma1")  # (D, D)
    middle = root1 @ sigma2 @ root1
    middle = 0.5 * (middle + middle.T)  # symmetric up to round-off; make it exact for eigvalsh
    eigvals = np.linalg.eigvalsh(middle)
    _check_floor(eigvals, "sigma1^(1/2) sigma2 sigma1^(1/2)")
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) in float64 (docs/math.md sec. 13).

    ``mu*`` have shape (D,), ``sigma*`` shape (D, D) and must be symmetric positive semi-definite.
    """
    mu1, mu2 = (np.asarray(m, dtype=np.float64).reshape(-1) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    dim = mu1.shape[0]
    for name, value in (("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        expected = (dim,) if name == "mu2" else (dim, dim)
        if value.shape != expected:
            raise ValueError(
                f"{name} has shape {value.shape}, expected {expected} to match mu1 of shape ({dim},)"
            )
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(sigma).max()))):
            raise ValueError(f"{name} is not symmetric; pass a covariance matrix")
    sigma1, sigma2 = 0.5 * (sigma1 + sigma1.T), 0.5 * (sigma2 + sigma2.T)
    diff = mu1 - mu2
    distance = float(diff @ diff) + float(np.trace(sigma1) + np.trace(sigma2))
    distance -= 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(distance, 0.0)


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (FID/FVD, sec. 13)."""
    mu1, sigma1 = feature_stats(_as_float64_2d(feats_a, "feats_a"))
    mu2, sigma2 = feature_stats(_as_float64_2d(feats_b, "feats_b"))
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature sets differ in dimension: {mu1.shape[0]} vs {mu2.shape[0]}")
    return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)
