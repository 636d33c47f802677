"""Tests for the Inception Score, RBF MMD and mode coverage against float64 references."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import softmax
from scipy.stats import entropy

from gen.metrics import inception_score, mmd, mode_coverage

# ------------------------------------------------------------------------------ Inception Score


def _is_reference(logits, splits):
    p = softmax(logits.astype(np.float64), axis=1)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean([entropy(row, py) for row in part])))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize("n,splits", [(100, 10), (103, 7), (20, 1)])
def test_inception_score_matches_reference(n, splits):
    logits = np.random.default_rng(n).normal(size=(n, 10)) * 4
    mean, std = inception_score(logits, splits)
    ref_mean, ref_std = _is_reference(logits, splits)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-9, abs=1e-12)


def test_inception_score_bounds():
    assert inception_score(np.zeros((50, 10)), 5)[0] == pytest.approx(1.0)
    confident = np.full((40, 4), -50.0)
    confident[np.arange(40), np.arange(40) % 4] = 50.0
    assert inception_score(confident, 2) == pytest.approx((4.0, 0.0))


def test_inception_score_errors():
    with pytest.raises(ValueError, match="splits = 11 needs at least that many samples, got 10"):
        inception_score(np.zeros((10, 3)), 11)
    with pytest.raises(ValueError, match="at least 2 classes"):
        inception_score(np.zeros((10, 1)), 2)
    with pytest.raises(ValueError, match="1 NaN"):
        inception_score(np.array([[0.0, np.nan], [1.0, 2.0]]), 1)

# ------------------------------------------------------------------------------ MMD


def _mmd_reference(x, y, bandwidths):
    def k(a, b):
        d2 = cdist(a, b, "sqeuclidean")
        return sum(np.exp(-d2 / (2 * s**2)) for s in np.atleast_1d(bandwidths))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return xx + yy - 2 * kxy.mean()


@pytest.mark.parametrize("bandwidths", [0.5, (0.1, 1.0, 4.0)])
def test_mmd_matches_reference(bandwidths):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(250, 2)) * 1.5 + 1.0
    assert mmd(x, y, bandwidths) == pytest.approx(_mmd_reference(x, y, bandwidths), rel=1e-10)
    same = mmd(x, rng.normal(size=(250, 2)), bandwidths)  # 0 in expectation
    assert mmd(x, y, bandwidths) > 10 * abs(same)


def test_mmd_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="positive finite"):
        mmd(x, x, (1.0, 0.0))
    with pytest.raises(ValueError, match="at least 2 samples in each set, got 5 and 1"):
        mmd(x, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="x and y must have the same feature dimension"):
        mmd(x, np.zeros((5, 3)))

# ------------------------------------------------------------------------------ mode coverage


def _modes_reference(x, centers, std, threshold, min_share):
    """PacGAN's MetricLogger loop (isotropic std per mode), with the min-share rule."""
    std = np.broadcast_to(std, (len(centers),))
    counts = np.zeros(len(centers), int)
    good = 0
    for p in x:
        d = [np.sqrt(((p - c) ** 2).sum()) / s for c, s in zip(centers, std, strict=True)]
        j = int(np.argmin(d))
        if d[j] < threshold:
            counts[j] += 1
            good += 1
    need = max(1, min_share * len(x) / len(centers))
    return int((counts >= need).sum()), good / len(x), counts


def _grid(n_side=5):
    g = np.arange(n_side) * 2.0 - 4.0
    return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)


@pytest.mark.parametrize("min_share", [0.0, 0.2, 1.0])
def test_mode_coverage_matches_reference(min_share):
    rng = np.random.default_rng(0)
    centers, std = _grid(), 0.05
    # Half the modes get many samples, a few get some, the rest none; some samples are off-mode.
    weights = np.r_[np.full(12, 8.0), np.full(4, 1.0), np.zeros(9)]
    k = rng.choice(25, size=2500, p=weights / weights.sum())
    spread = std * rng.choice([1.0, 4.0], (2500, 1), p=[0.9, 0.1])
    x = centers[k] + rng.normal(size=(2500, 2)) * spread
    out = mode_coverage(x, centers, std, min_share=min_share)
    modes, hq, counts = _modes_reference(x, centers, std, 3.0, min_share)
    assert (out.modes, out.high_quality) == (modes, pytest.approx(hq))
    np.testing.assert_array_equal(out.counts, counts)
    assert 0.85 < out.high_quality < 0.97


def test_mode_coverage_extremes_and_per_mode_std():
    centers = _grid()
    assert mode_coverage(centers, centers, 0.1, min_share=0).modes == 25
    far = mode_coverage(centers + 1.0, centers, 0.1)
    assert (far.modes, far.high_quality) == (0, 0.0)
    std = np.full(25, 0.1)
    std[0] = 1.0  # one wide mode takes the point between it and its neighbour
    out = mode_coverage(np.array([[-3.0, -4.0]]), centers, std, min_share=0)
    assert out.counts[0] == 1 and out.modes == 1


def test_mode_coverage_errors():
    c = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        mode_coverage(np.zeros((4, 2)), c, np.ones(2))
    with pytest.raises(ValueError, match="positive and finite"):
        mode_coverage(np.zeros((4, 2)), c, 0.0)
    with pytest.raises(ValueError, match="same feature dimension"):
        mode_coverage(np.zeros((4, 3)), c, 1.0)
