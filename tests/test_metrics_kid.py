"""Tests for gen.metrics.kid against torch-fidelity's recipe, written out in float64 here."""

import jax.numpy as jnp
import numpy as np
import pytest

from gen.metrics import kid


def _torch_fidelity_kid(f1, f2, subsets, size, seed):
    """torch-fidelity's kid_features_to_metric (poly kernel, degree 3, gamma 1/D, coef 1)."""
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), size, replace=False)].astype(np.float64)
        y = f2[rng.choice(len(f2), size, replace=False)].astype(np.float64)
        gamma = 1.0 / x.shape[1]
        k_xx = (x @ x.T * gamma + 1) ** 3
        k_yy = (y @ y.T * gamma + 1) ** 3
        k_xy = (x @ y.T * gamma + 1) ** 3
        m = size
        kt_xx = k_xx.sum() - np.diagonal(k_xx).sum()
        kt_yy = k_yy.sum() - np.diagonal(k_yy).sum()
        mmds.append((kt_xx + kt_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))
    return np.mean(mmds), np.std(mmds)


@pytest.mark.parametrize("n_real,n_fake,size,seed", [(120, 90, 50, 2020), (60, 60, 60, 7)])
def test_matches_torch_fidelity_recipe(n_real, n_fake, size, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, 32)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, 32)) * 1.2 + 0.2).astype(np.float32)
    mean, std = kid(real, fake, num_subsets=20, subset_size=size, seed=seed)
    ref_mean, ref_std = _torch_fidelity_kid(real, fake, 20, size, seed)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-10)
    assert mean > 0.05  # the shift and scale are seen
    assert kid(jnp.asarray(real), jnp.asarray(fake), 20, size, seed)[0] == mean


def test_one_distribution_gives_about_zero():
    # The unbiased estimate is 0 in expectation for one distribution (it can dip below 0).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    mean, _ = kid(x, y, num_subsets=10, subset_size=500)
    shifted, _ = kid(x, y + 0.5, num_subsets=10, subset_size=500)
    assert abs(mean) < 0.01 * shifted


def test_errors_are_clear():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match=r"min\(N_real, N_fake\)\] = \[2, 10\], got 11"):
        kid(x, np.zeros((20, 4)), subset_size=11)
    with pytest.raises(ValueError, match="same feature dimension, got 4 and 5"):
        kid(x, np.zeros((10, 5)), subset_size=5)
    with pytest.raises(ValueError, match="positive int"):
        kid(x, x, num_subsets=0, subset_size=5)
    bad = np.zeros((10, 4))
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="fake holds 0 NaN and 1 infinite"):
        kid(x, bad, subset_size=5)
