"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

The unbiased estimate of MMD^2 with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``,
averaged over random subsets. For subsets ``X, Y`` of ``m`` rows each::

    MMD^2 = sum_{i != j} (k(x_i, x_j) + k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

The subsets follow torch-fidelity's ``kid_features_to_metric`` with ``input1 = real``, ``input2
= fake``: ``rng = np.random.RandomState(seed)``, then per subset ``real[rng.choice(N_real, m,
replace=False)]`` and ``fake[rng.choice(N_fake, m, replace=False)]``; the result is the mean and
the (population, ddof 0) standard deviation over subsets, so with ``seed=2020`` (torch-fidelity's
default) the numbers are torch-fidelity's. clean-fid's ``kernel_distance`` computes the same
estimate (its mean) from ``np.random`` draws. Kernels are computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gen.metrics.checks import as_features, check_positive_int, check_same_dim

DEFAULT_SEED = 2020


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of two equal-sized sets with ``k(a, b) = (a.b / D + 1)^3``."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    off = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return float(off / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(
    real: Any,
    fake: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``num_subsets`` random subsets of ``subset_size`` rows of each set.

    ``real`` and ``fake`` are ``(N, D)`` features (NumPy or JAX). ``subset_size`` may not exceed
    either set; pass ``min(len(real), len(fake))`` for small sets.
    """
    r, f = as_features(real, "real", None), as_features(fake, "fake", None)
    check_same_dim(r, f)
    num_subsets = check_positive_int(num_subsets, "num_subsets")
    m = check_positive_int(subset_size, "subset_size")
    if m < 2 or m > min(len(r), len(f)):
        raise ValueError(
            f"KID subset_size must be in [2, min(N_real, N_fake)] = [2, {min(len(r), len(f))}], "
            f"got {m}."
        )
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        x = r[rng.choice(len(r), m, replace=False)].astype(np.float64)
        y = f[rng.choice(len(f), m, replace=False)].astype(np.float64)
        mmds[i] = polynomial_mmd2(x, y)
    return float(mmds.mean()), float(mmds.std())
