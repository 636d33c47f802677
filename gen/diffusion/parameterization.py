"""What a denoiser predicts, and exact conversions between the parameterizations.

Every Gaussian path here is ``x_t = alpha_t x0 + sigma_t eps`` with ``eps ~ N(0, I)``; the
coefficients and their time derivatives come in a :class:`Coefficients`. This covers the
variance-preserving diffusions of ``gen.diffusion.schedules`` (``alpha^2 + sigma^2 = 1``) and the
flow-matching paths (rectified flow: ``alpha = 1 - t``, ``sigma = t``) alike. A network's output
is one of:

==============  =========================================  ======================================
name            prediction                                 recovers ``(x0, eps)`` as
==============  =========================================  ======================================
``eps``         ``eps``                                    ``x0 = (x_t - sigma eps) / alpha``
``x0``          ``x0``                                     ``eps = (x_t - alpha x0) / sigma``
``v``           ``v = alpha eps - sigma x0`` (Salimans     ``x0 = (alpha x_t - sigma v) / n``,
                & Ho 2022)                                 ``eps = (sigma x_t + alpha v) / n``,
                                                           ``n = alpha^2 + sigma^2``
``score``       ``grad log p_t(x_t) = -eps / sigma``       ``eps = -sigma score``
``velocity``    ``u = dx_t/dt = alpha' x0 + sigma' eps``   the 2x2 solve with ``x_t`` (see code)
==============  =========================================  ======================================

``eps`` fails at ``alpha = 0`` and ``x0`` and ``score`` at ``sigma = 0``; ``v`` and ``velocity``
are defined everywhere the path is (``velocity`` needs ``alpha sigma' - sigma alpha' != 0``,
true for every path here). Conversions are exact algebra, elementwise, in the input's dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.diffusion import schedules
from gen.diffusion.schedules import Schedule

Array = jax.Array
PARAMETERIZATIONS = ("eps", "x0", "v", "score", "velocity")


class Coefficients(NamedTuple):
    """``x_t = alpha x0 + sigma eps`` at one time, with ``d alpha/dt`` and ``d sigma/dt``.

    Each field broadcasts against the data: give it shape ``(B, 1, ..., 1)`` for a batch.
    """

    alpha: Array
    sigma: Array
    d_alpha: Array
    d_sigma: Array


def check_parameterization(name: str) -> str:
    """Returns ``name`` if it is a known parameterization, else raises a ``ValueError``."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(
            f"unknown parameterization {name!r}; choose one of {', '.join(PARAMETERIZATIONS)}."
        )
    return name


def vp_coefficients(schedule: Schedule, t: Array) -> Coefficients:
    """The variance-preserving coefficients of a log-SNR ``schedule`` at ``t`` (via ``jax.jvp``)."""
    return Coefficients(*schedules.alpha_sigma_and_derivatives(schedule, t))


def rectified_flow_coefficients(t: Array) -> Coefficients:
    """The straight path ``x_t = (1 - t) x0 + t eps`` of rectified flow / conditional OT."""
    t = jnp.asarray(t)
    t = t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(jnp.float32)
    return Coefficients(1.0 - t, t, -jnp.ones_like(t), jnp.ones_like(t))


def to_x0_eps(
    pred: Array, x_t: Array, c: Coefficients, parameterization: str
) -> tuple[Array, Array]:
    """The ``(x0, eps)`` that a prediction in ``parameterization`` implies at ``x_t``."""
    check_parameterization(parameterization)
    a, s = c.alpha, c.sigma
    if parameterization == "eps":
        return (x_t - s * pred) / a, pred
    if parameterization == "x0":
        return pred, (x_t - a * pred) / s
    if parameterization == "v":
        n = a * a + s * s
        return (a * x_t - s * pred) / n, (s * x_t + a * pred) / n
    if parameterization == "score":
        eps = -s * pred
        return (x_t - s * eps) / a, eps
    # velocity: solve [[a, s], [a', s']] @ [x0, eps] = [x_t, u]
    det = a * c.d_sigma - s * c.d_alpha
    return (c.d_sigma * x_t - s * pred) / det, (a * pred - c.d_alpha * x_t) / det


def from_x0_eps(x0: Array, eps: Array, c: Coefficients, parameterization: str) -> Array:
    """The prediction in ``parameterization`` that corresponds to ``(x0, eps)``."""
    check_parameterization(parameterization)
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return c.alpha * eps - c.sigma * x0
    if parameterization == "score":
        return -eps / c.sigma
    return c.d_alpha * x0 + c.d_sigma * eps


def convert(pred: Array, x_t: Array, c: Coefficients, source: str, target: str) -> Array:
    """Re-expresses a ``source`` prediction at ``x_t`` in the ``target`` parameterization."""
    check_parameterization(source)
    check_parameterization(target)
    if source == target:
        return pred
    return from_x0_eps(*to_x0_eps(pred, x_t, c, source), c, target)
