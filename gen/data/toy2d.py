"""Synthetic 2-D densities, with the definitions of FFJORD's ``lib/toy_data.py``.

The scales follow Grathwohl et al., "FFJORD" (ICLR 2019), github.com/rtqichen/ffjord, so that
likelihoods are comparable with the literature. The sampling code is our own: vectorized numpy
with an explicit ``np.random.Generator``. Where FFJORD draws deterministic grids (sklearn's
``make_moons``/``make_circles`` place points on a ``linspace``) or fixed class counts, we draw the
angle or class i.i.d., which is the same distribution in the limit.

- ``8gaussians``: 8 isotropic Gaussians with std 0.5 at radius 4 on the angles k*pi/4, all divided
  by 1.414 (FFJORD's constant, kept instead of sqrt(2)). Exact ``log_prob``.
- ``moons``: sklearn's two moons (noise 0.1), times 2, shifted by (-1, -0.2).
- ``checkerboard``: uniform on the 8 "even" 2x2 squares of [-4, 4)^2. Exact ``log_prob``.
- ``pinwheel``: 5 arms; radial std 0.3, tangential std 0.1, rate 0.25, times 2.
- ``swissroll``: sklearn's swiss roll (noise 1.0), coordinates (x, z), divided by 5.
- ``circles``: sklearn's two circles (factor 0.5, noise 0.08), times 3.
- ``2spirals``: two interleaved spirals of 1.5 turns, divided by 3, plus noise with std 0.1.
- ``25gaussians``: the 2-D grid of VEEGAN and PacGAN (Lin et al. 2018, Table 2): 25 isotropic
  Gaussians with std 0.05 at ``(i, j)`` for ``i, j`` in {-4, -2, 0, 2, 4}, equal weights.
  Exact ``log_prob``.
- ``2rings``: 16 isotropic Gaussians with std 0.05, equal weights: 8 on a circle of radius 4
  at the angles ``k pi / 4`` and 8 on a circle of radius 2 at ``(k + 1/2) pi / 4``. Exact
  ``log_prob``.

The three Gaussian mixtures have known modes (``mixture_modes``) for mode counting.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from gen.data.source import ArraySource, Dataset, DataSpec
from gen.errors import ConfigError

NAMES: tuple[str, ...] = (
    "8gaussians",
    "moons",
    "checkerboard",
    "pinwheel",
    "swissroll",
    "circles",
    "2spirals",
    "25gaussians",
    "2rings",
)
HAS_LOG_PROB: frozenset[str] = frozenset(
    {"8gaussians", "checkerboard", "25gaussians", "2rings"})

# 8gaussians: FFJORD's centers scale * (cos, sin)(k pi / 4) and std 0.5, then divided by 1.414.
_G8_SCALE = 4.0 / 1.414
_G8_STD = 0.5 / 1.414
_G8_CENTERS = _G8_SCALE * np.stack(
    [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=-1
)

# 25gaussians: PacGAN's MEANS = product(range(-4, 5, 2), repeat=2), variances 0.05^2 I.
_GRID_CENTERS = np.array([[i, j] for i in range(-4, 5, 2) for j in range(-4, 5, 2)], np.float64)
_GRID_STD = 0.05
_RING_ANGLES = np.arange(8) * np.pi / 4
_RINGS_CENTERS = np.concatenate([
    4.0 * np.stack([np.cos(_RING_ANGLES), np.sin(_RING_ANGLES)], -1),
    2.0 * np.stack([np.cos(_RING_ANGLES + np.pi / 8), np.sin(_RING_ANGLES + np.pi / 8)], -1),
])
_RINGS_STD = 0.05
# name -> (centers, std) of the equal-weight isotropic Gaussian mixtures
_MIXTURES = {
    "8gaussians": (_G8_CENTERS, _G8_STD),
    "25gaussians": (_GRID_CENTERS, _GRID_STD),
    "2rings": (_RINGS_CENTERS, _RINGS_STD),
}


def _mixture(name: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        centers, std = _MIXTURES[name]
        k = rng.integers(0, len(centers), size=n)
        return centers[k] + std * rng.standard_normal((n, 2))

    return draw


def _gaussians8(rng: np.random.Generator, n: int) -> np.ndarray:
    k = rng.integers(0, 8, size=n)
    return _G8_CENTERS[k] + _G8_STD * rng.standard_normal((n, 2))


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.uniform(0.0, np.pi, size=n)
    inner = rng.integers(0, 2, size=n).astype(bool)
    x = np.where(inner, 1.0 - np.cos(a), np.cos(a))
    y = np.where(inner, 0.5 - np.sin(a), np.sin(a))
    pts = np.stack([x, y], axis=-1) + 0.1 * rng.standard_normal((n, 2))
    return 2.0 * pts + np.array([-1.0, -0.2])


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x1 = rng.uniform(-2.0, 2.0, size=n)
    x2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=-1)


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    num_arms, rate = 5, 0.25
    feats = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    feats[:, 0] += 1.0
    arm = rng.integers(0, num_arms, size=n)
    angle = 2 * np.pi * arm / num_arms + rate * np.exp(feats[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    # FFJORD's einsum("ti,tij->tj", features, [[c, -s], [s, c]]).
    rotated = np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], -1)
    return 2.0 * rotated


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) + rng.standard_normal((n, 2))
    return pts / 5.0


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.uniform(0.0, 2 * np.pi, size=n)
    radius = np.where(rng.integers(0, 2, size=n) == 1, 0.5, 1.0)
    pts = radius[:, None] * np.stack([np.cos(a), np.sin(a)], -1)
    return 3.0 * (pts + 0.08 * rng.standard_normal((n, 2)))


def _spirals2(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.sqrt(rng.uniform(size=n)) * 540 * (2 * np.pi) / 360
    x = -np.cos(t) * t + 0.5 * rng.uniform(size=n)
    y = np.sin(t) * t + 0.5 * rng.uniform(size=n)
    sign = np.where(rng.integers(0, 2, size=n) == 1, -1.0, 1.0)
    pts = sign[:, None] * np.stack([x, y], -1) / 3.0
    return pts + 0.1 * rng.standard_normal((n, 2))


_SAMPLERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "8gaussians": _gaussians8,
    "moons": _moons,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "swissroll": _swissroll,
    "circles": _circles,
    "2spirals": _spirals2,
    "25gaussians": _mixture("25gaussians"),
    "2rings": _mixture("2rings"),
}


def _check_name(name: str, names: tuple[str, ...] | frozenset[str] = NAMES) -> None:
    if name not in names:
        raise ValueError(f"Unknown toy2d density {name!r}; expected one of: {', '.join(names)}.")


def mixture_modes(name: str) -> tuple[np.ndarray, float] | None:
    """``(centers (K, 2), std)`` of a Gaussian mixture density, or ``None`` for the others.

    For mode counting (``gen.metrics.mode_coverage``): every mode is isotropic with that std.
    """
    _check_name(name)
    if name in _MIXTURES:
        centers, std = _MIXTURES[name]
        return centers.copy(), std
    return None


def sample_with(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of density ``name`` drawn with ``rng``, float32 of shape (n, 2)."""
    _check_name(name)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    return _SAMPLERS[name](rng, int(n)).astype(np.float32)


def sample(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` samples of density ``name``, float32 of shape (n, 2); deterministic in ``seed``."""
    return sample_with(name, n, np.random.default_rng(seed))


def log_prob(name: str, x: np.ndarray) -> np.ndarray:
    """The exact log-density at points ``x`` of shape (..., 2), in float64.

    Defined for the names in ``HAS_LOG_PROB``; raises ``ValueError`` for the others.
    ``checkerboard`` is ``-log 32`` on its 8 half-open squares ``[a, a+2) x [b, b+2)`` and ``-inf``
    elsewhere.
    """
    _check_name(name)
    if name not in HAS_LOG_PROB:
        raise ValueError(
            f"toy2d density {name!r} has no closed-form log-density; "
            f"only {', '.join(sorted(HAS_LOG_PROB))} do."
        )
    x = np.asarray(x, np.float64)
    if x.shape[-1:] != (2,):
        raise ValueError(f"x must have shape (..., 2), got {x.shape}.")
    if name in _MIXTURES:
        centers, std = _MIXTURES[name]
        sq = np.sum((x[..., None, :] - centers) ** 2, axis=-1)  # (..., K)
        log_comp = (-0.5 * sq / std**2 - np.log(2 * np.pi * std**2)
                    - np.log(float(len(centers))))
        top = np.max(log_comp, axis=-1, keepdims=True)
        return np.squeeze(top, -1) + np.log(np.sum(np.exp(log_comp - top), axis=-1))
    cells = np.floor(x / 2.0)
    inside = np.all((x >= -4.0) & (x < 4.0), axis=-1) & (np.sum(cells, axis=-1) % 2 == 0)
    return np.where(inside, -np.log(32.0), -np.inf)


@functools.cache
def _entropy_8gaussians(num_samples: int = 1_000_000, seed: int = 0) -> float:
    # H = log 8 + H(N(0, s^2 I_2)) - E_{x ~ N(c_0, s^2 I)}[log(1 + sum_{j>0} N_j(x) / N_0(x))],
    # by symmetry of the 8 components. Only the small overlap term is estimated by Monte Carlo.
    rng = np.random.default_rng(seed)
    x = _G8_CENTERS[0] + _G8_STD * rng.standard_normal((num_samples, 2))
    sq = np.sum((x[:, None, :] - _G8_CENTERS) ** 2, axis=-1)
    log_ratio = -0.5 * (sq[:, 1:] - sq[:, :1]) / _G8_STD**2
    overlap = np.mean(np.log1p(np.sum(np.exp(log_ratio), axis=-1)))
    gaussian = 1.0 + np.log(2 * np.pi * _G8_STD**2)
    return float(np.log(8.0) + gaussian - overlap)


def entropy(name: str) -> float:
    """The differential entropy, in nats, of a density with a ``log_prob``.

    ``checkerboard``: exactly ``log 32``. ``25gaussians`` and ``2rings``: ``log K`` plus one
    component's entropy (their modes are too far apart to overlap in float64). ``8gaussians``:
    ``log 8`` plus the entropy of one component, minus the overlap term
    ``E[log(1 + sum_j N_j / N_own)]``, which is estimated by float64 Monte Carlo with 10^6
    samples and a fixed seed. The overlap term is about 6e-3 nats and its Monte Carlo standard
    error about 1e-4 nats, so the value is good to ~1e-4 (~0.6 s, cached).
    """
    _check_name(name)
    if name == "checkerboard":
        return math.log(32.0)
    if name == "8gaussians":
        return _entropy_8gaussians()
    if name in _MIXTURES:  # modes 30+ std apart: the overlap term is below 1e-100
        centers, std = _MIXTURES[name]
        return float(np.log(len(centers)) + 1.0 + np.log(2 * np.pi * std**2))
    raise ValueError(
        f"toy2d density {name!r} has no known entropy; only {', '.join(sorted(HAS_LOG_PROB))} do."
    )


# The config keys of this source and their defaults (gen.data.loaders.source_keys).
KEYS = {"name": "8gaussians", "num_train": 100_000, "num_test": 20_000, "seed": 0}


def load(data_config) -> Dataset:
    """Fixed train and test samples of one density.

    Config keys: ``name`` (one of ``NAMES``), ``num_train`` (default 100_000), ``num_test``
    (default 20_000), ``seed`` (default 0). The two splits are drawn from independent streams
    spawned from ``np.random.SeedSequence(seed)``. Data is float32 (N, 2), ``kind="vector"``.
    """
    name = data_config.get("name")
    if name not in NAMES:
        raise ConfigError(
            f"Unknown data.name {name!r} for source 'toy2d'; expected one of: {', '.join(NAMES)}."
        )
    sizes = {}
    for key in ("num_train", "num_test"):
        value = data_config.get(key, KEYS[key])
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}.")
        sizes[key] = int(value)
    seed = data_config.get("seed", KEYS["seed"])
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"data.seed must be a non-negative integer, got {seed!r}.")
    train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2)
    )
    train = sample_with(name, sizes["num_train"], train_rng)
    test = sample_with(name, sizes["num_test"], test_rng)
    return Dataset(DataSpec(shape=(2,), kind="vector"), ArraySource(train), ArraySource(test))
