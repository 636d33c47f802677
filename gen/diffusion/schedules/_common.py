"""The ``Schedule`` type, and the helpers all schedules share: time clipping, dtypes, safe logs."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Schedule = Callable[[Array], Array]
Params = Any


def _float(t: ArrayLike) -> Array:
    """``t`` as a floating array: float64 stays float64, everything else becomes float32."""
    t = jnp.asarray(t)
    if jnp.issubdtype(t.dtype, jnp.floating) and jnp.finfo(t.dtype).bits >= 32:
        return t
    return t.astype(jnp.float32)


def _as_time(t: ArrayLike) -> Array:
    """Clips t into [0, 1]. ``where`` (not ``clip``) keeps the full derivative at t = 0 and 1."""
    t = _float(t)
    return jnp.where(t < 0, jnp.zeros_like(t), jnp.where(t > 1, jnp.ones_like(t), t))


def _one_minus(t: Array) -> Array:
    """``1 - t``, fenced off from XLA's algebraic simplifier, which would otherwise rewrite
    ``c + (1 - t)`` as ``(c + 1) - t`` and lose a tiny constant c (measured on CPU)."""
    return jax.lax.optimization_barrier(1.0 - t)


def _check_steps(n: Any, name: str = "num_steps") -> int:
    """An integer >= 1, or a ValueError that names the argument and the value."""
    if isinstance(n, bool):
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}.")
    try:
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}.") from None
    if n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n}.")
    return n


def _log_alpha(lam: Array) -> Array:
    """``log alpha = log sigmoid(lambda) / 2``."""
    return 0.5 * jax.nn.log_sigmoid(lam)


def _safe_log(x: Array, valid: Array) -> Array:
    """``log(x)`` where ``valid``, else -inf, with zero (not NaN) gradient in the -inf branch."""
    return jnp.where(valid, jnp.log(jnp.where(valid, x, jnp.ones_like(x))), -jnp.inf)


def _safe_scale(w: Array, lam: Array) -> Array:
    """``w * lam`` with ``0 * (-inf) = 0``, NaN-free in values and gradients."""
    finite = jnp.isfinite(lam)
    lam_safe = jnp.where(finite, lam, jnp.zeros_like(lam))
    return jnp.where(finite, w * lam_safe, jnp.where(w > 0, lam, jnp.zeros_like(lam)))


def _logit64(p: np.ndarray) -> np.ndarray:
    """Float64 ``log(p) - log(1 - p)``: +inf at p = 1 and -inf at p = 0, without warnings."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)
