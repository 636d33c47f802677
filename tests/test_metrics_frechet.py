"""Tests for gen.metrics.frechet against independent float64 references.

References: pytorch-fid's route (``np.cov`` and ``scipy.linalg.sqrtm(S1 @ S2)``) on
well-conditioned data; exact values where it is not accurate: covariances built from integer
2x2 blocks rotated by a Hadamard matrix (exactly representable, with a closed-form trace of the
square root), and sample covariances with N < D through the nuclear norm of ``Xc1 Xc2^T``.
"""

import decimal

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

# The exact construction is the metrics benchmark's: one definition of the reference.
from experiments.benchmarks.metrics import hadamard, integer_psd_blocks
from gen.metrics import feature_statistics, frechet_distance, trace_sqrt_product


def _pytorch_fid_route(mu1, s1, mu2, s2):
    """pytorch-fid's calculate_frechet_distance (without its eps retry), written out."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def test_equals_the_sqrtm_route_on_well_conditioned_data():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(600, 24)) @ rng.normal(size=(24, 24))
    b = rng.normal(0.3, 1.2, size=(500, 24)) @ rng.normal(size=(24, 24))
    ours = frechet_distance(*_stats(a), *_stats(b))
    ref = _pytorch_fid_route(*_stats(a), *_stats(b))
    assert ours == pytest.approx(ref, rel=1e-10)
    assert ours > 1.0


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(1)
    mu, sigma = _stats(rng.normal(size=(300, 16)) * rng.uniform(0.1, 10, size=16))
    assert 0.0 <= frechet_distance(mu, sigma, mu, sigma) < 1e-10 * np.trace(sigma)
    # Singular (N < D): still 0, not sqrt(eps)-sized noise.
    mu, sigma = _stats(rng.normal(size=(5, 40)))
    assert 0.0 <= frechet_distance(mu, sigma, mu, sigma) < 1e-12 * np.trace(sigma)


def _rotated(blocks: list[np.ndarray], h: np.ndarray) -> np.ndarray:
    """``H blockdiag(blocks) H^T / d``: integer sums then a power-of-two division, all exact."""
    b = scipy.linalg.block_diag(*blocks).astype(np.float64)
    return (h @ b @ h.T) / len(h)


def _exact_trace_sqrt(blocks1, blocks2) -> decimal.Decimal:
    """sum_i tr sqrt(A_i^1/2 B_i A_i^1/2) = sum_i sqrt(tr(A_i B_i) + 2 sqrt(det A_i det B_i))."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        total = decimal.Decimal(0)
        for a, b in zip(blocks1, blocks2, strict=True):
            det = (int(a[0, 0]) * int(a[1, 1]) - int(a[0, 1]) ** 2) * (
                int(b[0, 0]) * int(b[1, 1]) - int(b[0, 1]) ** 2
            )
            tr = decimal.Decimal(int(np.trace(a @ b)))
            total += (tr + 2 * decimal.Decimal(det).sqrt()).sqrt()
        return total


@pytest.mark.parametrize("singular", [0.0, 0.5, 0.9])
def test_exact_on_rotated_block_covariances(singular):
    d = 64
    rng = np.random.default_rng(int(singular * 10))
    h = hadamard(d)
    b1, b2 = (integer_psd_blocks(rng, d // 2, singular),
              integer_psd_blocks(rng, d // 2, singular))
    s1, s2 = _rotated(b1, h), _rotated(b2, h)
    mu1, mu2 = rng.integers(-5, 5, d).astype(float), rng.integers(-5, 5, d).astype(float)
    exact_tr = _exact_trace_sqrt(b1, b2)
    exact = (
        decimal.Decimal(int(((mu1 - mu2) ** 2).sum()))
        + sum(int(np.trace(a)) for a in b1) + sum(int(np.trace(b)) for b in b2)
        - 2 * exact_tr
    )
    scale = float(sum(int(np.trace(a)) for a in b1))
    assert abs(trace_sqrt_product(s1, s2) - float(exact_tr)) < 1e-12 * scale
    assert abs(frechet_distance(mu1, s1, mu2, s2) - float(exact)) < 1e-12 * scale
    if singular >= 0.5:
        # Where S1 S2 is singular the sqrtm route loses digits: sqrt(eps) per zero eigenvalue.
        err_sqrtm = abs(_pytorch_fid_route(mu1, s1, mu2, s2) - float(exact))
        err_ours = abs(frechet_distance(mu1, s1, mu2, s2) - float(exact))
        assert err_sqrtm > 100 * max(err_ours, 1e-16 * scale)


@pytest.mark.parametrize("n", [4, 12, 30])
def test_exact_for_sample_covariances_with_fewer_samples_than_dims(n):
    # For S = Xc^T Xc / (n - 1), the nonzero eigenvalues of S1^1/2 S2 S1^1/2 are the squared
    # singular values of Xc1 Xc2^T / (n - 1): a small, well-conditioned, independent route.
    d = 48
    rng = np.random.default_rng(n)
    x1 = rng.normal(size=(n, d)) * np.linspace(0.2, 3.0, d)
    x2 = rng.normal(0.5, 1.0, size=(n, d))
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    ref_tr = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / (n - 1)
    (mu1, s1), (mu2, s2) = feature_statistics(x1), feature_statistics(x2)
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref_tr, rel=1e-12)
    diff = x1.mean(0) - x2.mean(0)
    ref = diff @ diff + (c1**2).sum() / (n - 1) + (c2**2).sum() / (n - 1) - 2 * ref_tr
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-12)


def test_feature_statistics_streams_batches_exactly():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(1000, 12)) * rng.uniform(0.5, 2, 12) + 1e4).astype(np.float32)
    ref_mu = x.astype(np.float64).mean(0)
    centered = x.astype(np.float64) - ref_mu
    ref_sigma = centered.T @ centered / (len(x) - 1)
    for feats in (x, jnp.asarray(x), [x[:1], x[1:300], x[300:301], x[301:]]):
        mu, sigma = feature_statistics(feats, batch_size=128)
        assert mu.dtype == np.float64 and sigma.shape == (12, 12)
        np.testing.assert_allclose(mu, ref_mu, rtol=1e-14)
        np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-10, atol=1e-12 * ref_sigma.max())
    mu, sigma = feature_statistics(x[:2])
    np.testing.assert_allclose(sigma, np.cov(x[:2].astype(np.float64), rowvar=False), rtol=1e-12)


def test_errors_are_clear():
    rng = np.random.default_rng(3)
    mu, sigma = _stats(rng.normal(size=(20, 4)))
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        feature_statistics(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2 samples, got 0"):
        feature_statistics([])
    bad = rng.normal(size=(10, 4))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        feature_statistics(bad)
    with pytest.raises(ValueError, match="D = 4, got 5"):
        feature_statistics([np.ones((3, 4)), np.ones((3, 5))])
    with pytest.raises(ValueError, match=r"\(N, D\) array"):
        feature_statistics(np.ones(10))
    with pytest.raises(ValueError, match="vectors of one size"):
        frechet_distance(mu, sigma, mu[:3], sigma[:3, :3])
    with pytest.raises(ValueError, match=r"must be \(4, 4\)"):
        frechet_distance(mu, sigma, mu, np.eye(5))
    with pytest.raises(ValueError, match="square"):
        frechet_distance(mu, sigma, mu, np.ones((4, 3)))
    with pytest.raises(ValueError, match="not positive semi-definite"):
        frechet_distance(mu, sigma, mu, -np.eye(4))
    with pytest.raises(ValueError, match="infinite"):
        frechet_distance(mu, sigma, mu, np.full((4, 4), np.inf))
