"""Tests for gen.metrics.manifold against the prdc package's compute_prdc, written out here."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from gen.metrics import density_coverage, prdc, precision_recall
from gen.metrics.manifold import knn_radii_sq


def _prdc_reference(real, fake, k):
    """clovaai/generative-evaluation-prdc's compute_prdc: full float64 matrices, strict <."""
    def radii(x):
        d = cdist(x, x)
        return np.partition(d, k, axis=1)[:, k]  # (k+1)-th smallest, the zero diagonal included

    r_real, r_fake = radii(real), radii(fake)
    d_rf = cdist(real, fake)
    inside = d_rf < r_real[:, None]
    return {
        "precision": inside.any(axis=0).mean(),
        "recall": (d_rf < r_fake[None, :]).any(axis=1).mean(),
        "density": inside.sum(axis=0).mean() / k,
        "coverage": (d_rf.min(axis=1) < r_real).mean(),
    }


@pytest.mark.parametrize("n,m,d,k", [(150, 100, 8, 3), (80, 120, 3, 5), (40, 40, 64, 1)])
@pytest.mark.parametrize("block_size", [None, 7])
def test_matches_prdc(n, m, d, k, block_size):
    rng = np.random.default_rng(n + m + d + k)
    real = rng.normal(size=(n, d))
    fake = rng.normal(size=(m, d)) * 1.3 + 0.3
    ours = prdc(real.astype(np.float32), fake.astype(np.float32), k, block_size=block_size)
    ref = _prdc_reference(real.astype(np.float32).astype(np.float64),
                          fake.astype(np.float32).astype(np.float64), k)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1
    p, r = precision_recall(real, fake, k, block_size)
    de, co = density_coverage(real, fake, k, block_size)
    assert (p, r, de, co) == pytest.approx(tuple(ours[key] for key in ref), abs=1e-6)


def test_knn_radii_exclude_the_point_itself():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(knn_radii_sq(x, 1), [1.0, 1.0, 4.0, 16.0])
    np.testing.assert_allclose(knn_radii_sq(x, 3, block_size=1), [49.0, 36.0, 16.0, 49.0])


def test_identical_sets_score_one():
    x = np.random.default_rng(0).normal(size=(200, 10))
    out = prdc(x, x.copy(), k=5, block_size=33)
    assert out == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_disjoint_sets_score_zero():
    rng = np.random.default_rng(1)
    out = prdc(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 100.0, k=3)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_errors_are_clear():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k = 5 needs more than k samples in each set, got 5 real"):
        prdc(x, np.ones((9, 3)), k=5)
    with pytest.raises(ValueError, match="got 10 real and 3 fake"):
        precision_recall(np.ones((10, 3)), np.ones((3, 3)), k=3)
    with pytest.raises(ValueError, match="positive int"):
        density_coverage(x, x, k=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        prdc(x, np.zeros((5, 2)), k=2)
    bad = np.ones((5, 3))
    bad[2] = np.nan
    with pytest.raises(ValueError, match="real holds 3 NaN"):
        prdc(bad, x, k=2)
