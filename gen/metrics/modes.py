"""Mode coverage of samples from a known mixture: the scoring of VEEGAN and PacGAN.

Each sample is assigned to its nearest mode in units of that mode's standard deviation,
``|x - c_k| / std_k`` (PacGAN's ``MetricLogger``), and is **high quality** when that distance is
below ``threshold`` (3 standard deviations). A mode is **captured** when it holds at least
``max(1, min_share * N / K)`` high-quality samples of the ``N`` samples, ``K`` modes: the share
of the ``N / K`` samples it would hold under perfect coverage. ``min_share=0.2`` is PacGAN's rule
on the 2-D grid (a mode with fewer than 20 of 2,500 samples over 25 modes is lost);
``min_share=0`` counts a mode with a single high-quality sample, as VEEGAN's tables do.

Example, on ``gen.data.toy2d``'s 8gaussians (centers at radius 4/1.414, std 0.5/1.414)::

    >>> a = np.arange(8) * np.pi / 4
    >>> centers = 4 / 1.414 * np.stack([np.cos(a), np.sin(a)], -1)
    >>> mode_coverage(centers[[0, 0, 1]], centers, 0.5 / 1.414, min_share=0).modes
    2
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gen.metrics.checks import as_features, check_same_dim


class ModeCoverage(NamedTuple):
    """modes: number of modes captured; high_quality: fraction of high-quality samples;
    counts: ``(K,)`` high-quality samples assigned to each mode."""

    modes: int
    high_quality: float
    counts: np.ndarray


def mode_coverage(
    samples: Any,
    centers: Any,
    std: float | Any,
    threshold: float = 3.0,
    min_share: float = 0.2,
) -> ModeCoverage:
    """Modes captured and the fraction of high-quality samples (module docstring).

    ``samples`` ``(N, D)``, ``centers`` ``(K, D)``, ``std`` a scalar or ``(K,)`` per-mode
    isotropic standard deviation.
    """
    x, c = as_features(samples, "samples"), as_features(centers, "centers")
    check_same_dim(x, c, "samples and centers")
    if len(x) == 0 or len(c) == 0:
        raise ValueError(f"Need at least one sample and one center, got {len(x)} and {len(c)}.")
    s = np.asarray(std, np.float64)
    if s.ndim == 0:
        s = np.full(len(c), float(s))
    elif s.shape != (len(c),):
        raise ValueError(f"std must be a scalar or have shape ({len(c)},), got shape {s.shape}.")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"std must be positive and finite, got {std!r}.")
    if not threshold > 0 or not min_share >= 0:
        raise ValueError(
            f"threshold must be > 0 and min_share >= 0, got {threshold!r} and {min_share!r}."
        )
    d = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)) / s[None, :]
    nearest = d.argmin(axis=1)
    good = d[np.arange(len(x)), nearest] < threshold
    counts = np.bincount(nearest[good], minlength=len(c))
    needed = max(1.0, min_share * len(x) / len(c))
    return ModeCoverage(int((counts >= needed).sum()), float(good.mean()), counts)
