"""Input checks shared by the metrics: 2-D finite feature arrays, matching dims, counts."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_features(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """``x`` as an ``(N, D)`` array of ``dtype``; ``ValueError`` if not 2-D or not finite.

    NumPy and JAX arrays are accepted; a JAX array is copied to the host. ``dtype=None`` keeps a
    floating dtype as it is (no copy) and casts anything else to float64.
    """
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (N, D) array of features, got shape {a.shape}.")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}.")
    if dtype is None:
        dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64
    a = a.astype(dtype, copy=False)
    check_finite(a, name)
    return a


def check_finite(a: np.ndarray, name: str) -> None:
    """``ValueError`` naming how many NaN or infinite entries ``a`` holds, if any."""
    if not np.isfinite(a).all():
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        raise ValueError(f"{name} holds {nan} NaN and {inf} infinite values; all must be finite.")


def check_same_dim(a: np.ndarray, b: np.ndarray, names: str = "real and fake") -> None:
    """``ValueError`` unless two ``(N, D)`` arrays have the same ``D``."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names} must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}."
        )


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int, ``ValueError`` unless it is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)
