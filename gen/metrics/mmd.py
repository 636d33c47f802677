"""Maximum mean discrepancy with a sum of RBF kernels, for low-dimensional data (toy 2-D sets).

With ``k(x, y) = sum_b exp(-|x - y|^2 / (2 b^2))`` over the bandwidths ``b``, the unbiased
estimate (Gretton et al. 2012, eq. 3) for ``X`` of ``N`` rows and ``Y`` of ``M`` rows::

    MMD^2 = sum_{i != j} k(x_i, x_j) / (N (N - 1)) + sum_{i != j} k(y_i, y_j) / (M (M - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (N M)

It is 0 in expectation when both sets come from one distribution and can then be slightly
negative. Float64, computed in blocks of rows, so memory stays ``O(block (N + M))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gen.metrics.checks import as_features, check_same_dim

BLOCK_ELEMENTS = 1 << 22


def _kernel_sum(a: np.ndarray, b: np.ndarray, gammas: np.ndarray, same: bool) -> float:
    """``sum_{i, j} k(a_i, b_j)``, without the diagonal when ``same``."""
    a_sq, b_sq = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    rows = max(1, BLOCK_ELEMENTS // max(len(b), 1))
    total = 0.0
    for s in range(0, len(a), rows):
        d = a_sq[s:s + rows, None] + b_sq[None, :] - 2.0 * (a[s:s + rows] @ b.T)
        np.maximum(d, 0.0, out=d)
        for g in gammas:
            total += float(np.exp(-g * d).sum())
    if same:
        total -= len(a) * len(gammas)  # k(x, x) = 1 per bandwidth
    return total


def mmd(x: Any, y: Any, bandwidths: float | Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0)) -> float:
    """The unbiased MMD^2 between ``(N, D)`` samples ``x`` and ``(M, D)`` samples ``y``.

    ``bandwidths`` are the RBF standard deviations ``b`` (one or several, summed).
    """
    a, b = as_features(x, "x"), as_features(y, "y")
    check_same_dim(a, b, "x and y")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"MMD needs at least 2 samples in each set, got {len(a)} and {len(b)}.")
    bw = np.atleast_1d(np.asarray(bandwidths, np.float64))
    if bw.ndim != 1 or len(bw) == 0 or not (np.isfinite(bw).all() and (bw > 0).all()):
        raise ValueError(f"bandwidths must be positive finite numbers, got {bandwidths!r}.")
    gammas = 1.0 / (2.0 * bw**2)
    n, m = len(a), len(b)
    return (
        _kernel_sum(a, a, gammas, True) / (n * (n - 1))
        + _kernel_sum(b, b, gammas, True) / (m * (m - 1))
        - 2.0 * _kernel_sum(a, b, gammas, False) / (n * m)
    )
