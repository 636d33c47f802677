"""Tests for gen.data.toy2d: samplers against FFJORD's recipes, exact densities and entropies."""

import itertools
import math

import ml_collections
import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import make_circles, make_moons, make_swiss_roll

from gen.data import toy2d
from gen.errors import ConfigError


def _ffjord_reference(name: str, n: int, rs: np.random.RandomState) -> np.ndarray:
    """FFJORD's lib/toy_data.py recipes (and PacGAN's 2-D grid), written independently, with a
    seeded RandomState."""
    if name == "25gaussians":  # PacGAN's config: means product(range(-4, 5, 2)), std 0.05
        means = np.array(list(itertools.product(range(-4, 5, 2), range(-4, 5, 2))), float)
        return means[rs.randint(25, size=n)] + 0.05 * rs.randn(n, 2)
    if name == "2rings":
        outer = [(4 * np.cos(k * np.pi / 4), 4 * np.sin(k * np.pi / 4)) for k in range(8)]
        inner = [(2 * np.cos((k + 0.5) * np.pi / 4), 2 * np.sin((k + 0.5) * np.pi / 4))
                 for k in range(8)]
        return np.array(outer + inner)[rs.randint(16, size=n)] + 0.05 * rs.randn(n, 2)
    if name == "swissroll":
        return make_swiss_roll(n_samples=n, noise=1.0, random_state=rs)[0][:, [0, 2]] / 5
    if name == "circles":
        return make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=rs)[0] * 3
    if name == "moons":
        return make_moons(n_samples=n, noise=0.1, random_state=rs)[0] * 2 + np.array([-1, -0.2])
    if name == "8gaussians":
        s = 1 / np.sqrt(2)
        centers = 4 * np.array(
            [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
        )
        return (rs.randn(n, 2) * 0.5 + centers[rs.randint(8, size=n)]) / 1.414
    if name == "pinwheel":
        per_class = n // 5
        rads = np.linspace(0, 2 * np.pi, 5, endpoint=False)
        features = rs.randn(5 * per_class, 2) * np.array([0.3, 0.1])
        features[:, 0] += 1.0
        angles = rads[np.repeat(np.arange(5), per_class)] + 0.25 * np.exp(features[:, 0])
        rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
        rotations = np.reshape(rotations.T, (-1, 2, 2))
        return 2 * rs.permutation(np.einsum("ti,tij->tj", features, rotations))
    if name == "2spirals":
        t = np.sqrt(rs.rand(n // 2, 1)) * 540 * (2 * np.pi) / 360
        d1x = -np.cos(t) * t + rs.rand(n // 2, 1) * 0.5
        d1y = np.sin(t) * t + rs.rand(n // 2, 1) * 0.5
        x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
        return x + rs.randn(*x.shape) * 0.1
    assert name == "checkerboard"
    x1 = rs.rand(n) * 4 - 2
    x2 = rs.rand(n) - rs.randint(0, 2, n) * 2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1) * 2


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_sample_shape_determinism_range(name):
    a = toy2d.sample(name, 1000, seed=3)
    assert a.shape == (1000, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, toy2d.sample(name, 1000, seed=3))
    assert not np.array_equal(a, toy2d.sample(name, 1000, seed=4))
    assert np.isfinite(a).all()
    assert np.abs(a).max() < 8.0
    assert (a.std(axis=0) > 0.5).all()
    assert toy2d.sample(name, 0, seed=0).shape == (0, 2)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_sample_matches_ffjord_recipe(name):
    n = 20_000  # enough to catch a 5% error in scale
    ours = toy2d.sample(name, n, seed=11).astype(np.float64)
    ref = _ffjord_reference(name, n, np.random.RandomState(12))
    for angle in np.arange(4) * np.pi / 4:  # 1-D Kolmogorov-Smirnov tests on 4 projections
        u = np.array([np.cos(angle), np.sin(angle)])
        assert stats.ks_2samp(ours @ u, ref @ u).pvalue > 1e-3, (name, angle)


def test_log_prob_8gaussians_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, size=(500, 2))
    angles = np.pi / 4 * np.arange(8)
    centers = (4 / 1.414) * np.stack([np.cos(angles), np.sin(angles)], 1)
    dens = sum(
        stats.multivariate_normal(c, (0.5 / 1.414) ** 2 * np.eye(2)).pdf(x) / 8 for c in centers
    )
    got = toy2d.log_prob("8gaussians", x)
    assert got.dtype == np.float64 and got.shape == (500,)
    np.testing.assert_allclose(got, np.log(dens), rtol=1e-9, atol=1e-9)
    # Far from the centers the log-density stays finite (computed in log space).
    assert np.isfinite(toy2d.log_prob("8gaussians", np.array([[40.0, -40.0]])))


def test_log_prob_checkerboard():
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, size=(2000, 2))
    cells = np.floor(x / 2).astype(int)
    inside = (np.abs(x) < 4).all(1) & ((cells[:, 0] + cells[:, 1]) % 2 == 0)
    got = toy2d.log_prob("checkerboard", x)
    np.testing.assert_allclose(got[inside], -math.log(32))
    assert np.isneginf(got[~inside]).all()
    # Every sample lies where the density is positive.
    assert np.isfinite(toy2d.log_prob("checkerboard", toy2d.sample("checkerboard", 5000, 0))).all()


@pytest.mark.parametrize("name", sorted(toy2d.HAS_LOG_PROB))
def test_density_integrates_to_one(name):
    h = 0.02
    side = np.arange(-6 + h / 2, 6, h)
    xx, yy = np.meshgrid(side, side)
    grid = np.stack([xx.ravel(), yy.ravel()], 1)
    total = np.exp(toy2d.log_prob(name, grid)).sum() * h * h
    assert abs(total - 1) < 1e-3


@pytest.mark.parametrize("name", sorted(toy2d.HAS_LOG_PROB))
def test_entropy_matches_sample_average(name):
    x = toy2d.sample(name, 200_000, seed=7)
    estimate = -toy2d.log_prob(name, x).mean()
    assert abs(estimate - toy2d.entropy(name)) < 0.012  # about 5 standard errors


def test_entropy_values():
    assert toy2d.entropy("checkerboard") == pytest.approx(math.log(32))
    # A mixture of 8 equal, nearly disjoint Gaussians: just below log 8 + H(one Gaussian).
    upper = math.log(8) + 1 + math.log(2 * math.pi * (0.5 / 1.414) ** 2)
    assert upper - 0.02 < toy2d.entropy("8gaussians") < upper


@pytest.mark.parametrize("name", ["25gaussians", "2rings"])
def test_tight_mixtures_modes_and_entropy(name):
    centers, std = toy2d.mixture_modes(name)
    assert std == 0.05 and len(centers) == {"25gaussians": 25, "2rings": 16}[name]
    # every mode is a local maximum of the exact density, and nothing lies between them
    x = toy2d.sample(name, 20_000, seed=0)
    nearest = np.linalg.norm(x[:, None] - centers[None], axis=-1).min(1)
    assert (nearest < 5 * std).all()
    assert len(np.unique(np.linalg.norm(x[:, None] - centers[None], axis=-1).argmin(1))) == (
        len(centers))
    upper = math.log(len(centers)) + 1 + math.log(2 * math.pi * std**2)
    assert toy2d.entropy(name) == pytest.approx(upper, abs=1e-12)
    if name == "25gaussians":  # PacGAN's grid exactly
        assert {tuple(c) for c in centers} == set(itertools.product(range(-4, 5, 2), repeat=2))


@pytest.mark.parametrize("name", sorted(set(toy2d.NAMES) - toy2d.HAS_LOG_PROB))
def test_no_log_prob(name):
    with pytest.raises(ValueError, match="closed-form"):
        toy2d.log_prob(name, np.zeros((1, 2)))
    with pytest.raises(ValueError):
        toy2d.entropy(name)


def test_unknown_name():
    with pytest.raises(ValueError, match="8gaussians"):
        toy2d.sample("9gaussians", 10, 0)


def test_load():
    cfg = ml_collections.ConfigDict(
        {"source": "toy2d", "name": "moons", "num_train": 300, "num_test": 100, "seed": 5}
    )
    ds = toy2d.load(cfg)
    assert ds.spec.shape == (2,) and ds.spec.kind == "vector" and ds.spec.num_classes is None
    assert len(ds.train) == 300 and len(ds.test) == 100
    batch = ds.train[np.array([0, 5, 299])]
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == np.float32 and "y" not in batch
    train, test = ds.train[np.arange(300)]["x"], ds.test[np.arange(100)]["x"]
    assert not np.isin(test[:, 0], train[:, 0]).any()  # independent streams
    again = toy2d.load(cfg)
    np.testing.assert_array_equal(again.train[np.arange(300)]["x"], train)
    cfg2 = ml_collections.ConfigDict(
        {"name": "moons", "num_train": 300, "num_test": 100, "seed": 6}
    )
    assert not np.array_equal(toy2d.load(cfg2).train[np.arange(300)]["x"], train)
    defaults = toy2d.load(ml_collections.ConfigDict({"name": "8gaussians"}))
    assert (len(defaults.train), len(defaults.test)) == (100_000, 20_000)


def test_load_errors():
    with pytest.raises(ConfigError, match="checkerboard") as e:
        toy2d.load(ml_collections.ConfigDict({"name": "nope"}))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="num_train"):
        toy2d.load(ml_collections.ConfigDict({"name": "moons", "num_train": 0}))
    with pytest.raises(ConfigError, match="seed"):
        toy2d.load(ml_collections.ConfigDict({"name": "moons", "seed": -1}))
