"""The Fréchet distance between Gaussians (FID's formula), and streaming feature statistics.

For ``N(mu1, S1)`` and ``N(mu2, S2)``::

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)

computed in float64 on the host with symmetric eigendecompositions (LAPACK through
``scipy.linalg``, several times faster than ``numpy.linalg``'s here): ``S1 = V diag(w) V^T``
gives ``S1^1/2 = V diag(sqrt w) V^T``, and ``M = S1^1/2 S2 S1^1/2`` is symmetric positive
semi-definite, so ``tr(M^1/2)`` is the sum of the square roots of its eigenvalues, which are
those of ``diag(sqrt w) V^T S2 V diag(sqrt w)`` restricted to ``w > 0``. Everything stays real.
Eigenvalues at or below ``d * eps * max eigenvalue`` are rounding noise around zero and count as
zero, so singular covariances (fewer samples than dimensions) come out exact where taking their
square roots would add ``sqrt(eps)``-sized errors per zero eigenvalue.

pytorch-fid and clean-fid instead take ``scipy.linalg.sqrtm(S1 @ S2)``, a Schur decomposition of
a non-symmetric matrix: slower, complex in general, and inaccurate when ``S1 S2`` is singular.
On well-conditioned covariances both agree to about 1e-10 relative (tests/test_metrics_frechet.py;
the README's benchmark has the timings and a singular case).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.linalg

from gen.metrics.checks import as_features, check_finite

# An input covariance whose smallest eigenvalue is below -NEG_TOL * its largest is refused.
NEG_TOL = 1e-6


def _check_psd(w: np.ndarray, name: str) -> None:
    """``ValueError`` when ascending eigenvalues ``w`` are more negative than rounding explains."""
    if w[0] < -NEG_TOL * max(float(w[-1]), 0.0):
        raise ValueError(
            f"{name} is not positive semi-definite: smallest eigenvalue {w[0]:.3g}, largest "
            f"{w[-1]:.3g}; pass a covariance matrix."
        )


def _zero_noise(w: np.ndarray) -> np.ndarray:
    tol = max(float(w.max()), 0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def trace_sqrt_product(sigma1: Any, sigma2: Any) -> float:
    """``tr((S1^1/2 S2 S1^1/2)^1/2)``, the trace of the square root of ``S1 S2``, in float64."""
    s1, s2 = _covariance(sigma1, "sigma1"), _covariance(sigma2, "sigma2")
    if s1.shape != s2.shape:
        raise ValueError(
            f"sigma1 and sigma2 must have the same shape, got {s1.shape} and {s2.shape}."
        )
    return _trace_sqrt(s1, s2)


def _trace_sqrt(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = scipy.linalg.eigh(s1, check_finite=False)
    _check_psd(w, "sigma1")
    _check_psd(scipy.linalg.eigvalsh(s2, check_finite=False), "sigma2")
    # M = V D^1/2 (V^T S2 V) D^1/2 V^T has the eigenvalues of D^1/2 (V^T S2 V) D^1/2, and the
    # rows and columns of zero eigenvalues of S1 vanish: only its range is needed.
    w = _zero_noise(w)
    keep = w > 0
    v, root = v[:, keep], np.sqrt(w[keep])
    m = v.T @ s2 @ v
    m *= root[:, None]
    m *= root[None, :]
    m += m.T
    m *= 0.5
    return float(np.sqrt(_zero_noise(scipy.linalg.eigvalsh(m, check_finite=False))).sum())


def _covariance(sigma: Any, name: str) -> np.ndarray:
    s = np.asarray(sigma, np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"{name} must be a square (D, D) covariance matrix, got shape {s.shape}.")
    check_finite(s, name)
    return 0.5 * (s + s.T)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """The squared Fréchet (2-Wasserstein) distance of ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    FID when the statistics are those of Inception features. Float64 on the host, symmetric
    ``eigh`` form (module docstring); exact for singular covariances. Never negative.

    Example::

        >>> mu, sigma = feature_statistics(np.random.default_rng(0).normal(size=(100, 4)))
        >>> frechet_distance(mu, sigma, mu, sigma) < 1e-12
        True
    """
    m1, m2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(
            f"mu1 and mu2 must be (D,) vectors of one size, got {m1.shape} and {m2.shape}."
        )
    check_finite(m1, "mu1")
    check_finite(m2, "mu2")
    s1, s2 = _covariance(sigma1, "sigma1"), _covariance(sigma2, "sigma2")
    if s1.shape != (len(m1), len(m1)) or s2.shape != s1.shape:
        raise ValueError(
            f"sigma1 and sigma2 must be ({len(m1)}, {len(m1)}) to match the means, got {s1.shape} "
            f"and {s2.shape}."
        )
    diff = m1 - m2
    d2 = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt(s1, s2)
    return max(float(d2), 0.0)


def feature_statistics(
    features: Any | Iterable[Any], batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``(D,)`` and unbiased covariance ``(D, D)`` of features, in float64, streaming.

    ``features`` is an ``(N, D)`` array (NumPy or JAX, read ``batch_size`` rows at a time) or any
    iterable of ``(n_i, D)`` arrays. Each piece is converted to float64 on its own and merged
    with Chan et al.'s pairwise update, ``M2 = M2_a + M2_b + delta delta^T n_a n_b / n``, so a
    50,000 x 2048 float32 array is never copied whole and large means do not cancel.
    """
    if hasattr(features, "shape") and hasattr(features, "ndim"):
        if features.ndim != 2:
            raise ValueError(f"features must be an (N, D) array, got shape {features.shape}.")
        step = max(int(batch_size), 1)
        pieces: Iterable[Any] = (features[i:i + step] for i in range(0, features.shape[0], step))
    else:
        pieces = features
    n, mean, m2 = 0, None, None
    for piece in pieces:
        x = as_features(piece, "features")
        if len(x) == 0:
            continue
        if mean is not None and x.shape[1] != len(mean):
            raise ValueError(f"feature batches must all have D = {len(mean)}, got {x.shape[1]}.")
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        m2_b = xc.T @ xc
        if mean is None:
            n, mean, m2 = len(x), mean_b, m2_b
            continue
        total = n + len(x)
        delta = mean_b - mean
        m2 += m2_b
        m2 += np.outer(delta, delta) * (n * len(x) / total)
        mean = mean + delta * (len(x) / total)
        n = total
    if n < 2:
        raise ValueError(f"A covariance needs at least 2 samples, got {n}.")
    return mean, m2 / (n - 1)
