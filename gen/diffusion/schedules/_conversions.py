"""Conversions: log-SNR to alpha, sigma, the EDM sigma and the SNR, their derivatives by
``jax.jvp``, and the integer-timestep convention."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen.diffusion.schedules._common import (
    Array,
    ArrayLike,
    Schedule,
    _check_steps,
    _float,
    _log_alpha,
)


def alpha_sigma_from_logsnr(lam: ArrayLike) -> tuple[Array, Array]:
    """VP ``(alpha, sigma)`` with ``alpha^2 = sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)``.

    Computed as ``exp(log_sigmoid(+-lambda) / 2)``: accurate for large |lambda|, and finite with
    finite gradients at ``lambda = -inf`` (alpha = 0, sigma = 1).
    """
    lam = _float(lam)
    return jnp.exp(_log_alpha(lam)), jnp.exp(_log_alpha(-lam))


def edm_sigma_from_logsnr(lam: ArrayLike) -> Array:
    """EDM (variance-exploding) noise level ``sigma = exp(-lambda / 2)`` (``sigma_vp / alpha``)."""
    return jnp.exp(-0.5 * _float(lam))


def logsnr_from_edm_sigma(sigma: ArrayLike) -> Array:
    """``lambda = -2 log sigma``, the inverse of :func:`edm_sigma_from_logsnr`."""
    return -2.0 * jnp.log(_float(sigma))


def logsnr_from_alpha_bar(alpha_bar: ArrayLike) -> Array:
    """``lambda = log(alpha_bar) - log1p(-alpha_bar)``: -inf at 0, +inf at 1."""
    a = _float(alpha_bar)
    return jnp.log(a) - jnp.log1p(-a)


def alpha_sigma(schedule: Schedule, t: ArrayLike) -> tuple[Array, Array]:
    """VP ``(alpha(t), sigma(t))``: ``x_t = alpha x_0 + sigma eps``, ``alpha^2 + sigma^2 = 1``."""
    return alpha_sigma_from_logsnr(schedule(_float(t)))


def alpha_bar(schedule: Schedule, t: ArrayLike) -> Array:
    """``alpha(t)^2 = sigmoid(lambda(t))``, diffusers' ``alphas_cumprod`` in continuous time."""
    return jax.nn.sigmoid(schedule(_float(t)))


def edm_sigma(schedule: Schedule, t: ArrayLike) -> Array:
    """EDM noise level ``sigma(t) = exp(-lambda(t) / 2)``: ``x_t / alpha = x_0 + sigma eps``."""
    return edm_sigma_from_logsnr(schedule(_float(t)))


def snr(schedule: Schedule, t: ArrayLike) -> Array:
    """Signal-to-noise ratio ``alpha^2 / sigma^2 = exp(lambda(t))``."""
    return jnp.exp(schedule(_float(t)))


def logsnr_and_derivative(schedule: Schedule, t: ArrayLike) -> tuple[Array, Array]:
    """``(lambda(t), d lambda / dt)`` in one forward-mode pass (``jax.jvp``), elementwise in t."""
    t = _float(t)
    return jax.jvp(schedule, (t,), (jnp.ones_like(t),))


def dlogsnr_dt(schedule: Schedule, t: ArrayLike) -> Array:
    """``d lambda / dt`` through ``jax.jvp`` (VDM's continuous-time loss weighs by its negative)."""
    return logsnr_and_derivative(schedule, t)[1]


def alpha_sigma_and_derivatives(
    schedule: Schedule, t: ArrayLike
) -> tuple[Array, Array, Array, Array]:
    """``(alpha, sigma, d alpha/dt, d sigma/dt)`` through ``jax.jvp``.

    Analytically ``d alpha/dt = alpha sigma^2 lambda' / 2`` and
    ``d sigma/dt = -sigma alpha^2 lambda' / 2``.
    """
    t = _float(t)
    (alpha, sigma), (dalpha, dsigma) = jax.jvp(
        lambda s: alpha_sigma(schedule, s), (t,), (jnp.ones_like(t),)
    )
    return alpha, sigma, dalpha, dsigma


def timestep_to_t(timestep: ArrayLike, num_steps: int) -> Array:
    """Continuous time of diffusers' integer timestep ``i in 0..T-1``: ``t_i = (i + 1) / T``."""
    num_steps = _check_steps(num_steps)
    return (_float(timestep) + 1.0) / num_steps


def t_to_timestep(t: ArrayLike, num_steps: int) -> Array:
    """Integer timestep of continuous t: ``ceil(t T) - 1`` clipped to ``0..T-1`` (int32).

    The inverse of :func:`timestep_to_t` on the grid. t within a few float ulps above a grid
    point counts as that grid point, so ``t_to_timestep(timestep_to_t(i, T), T) == i``.
    """
    num_steps = _check_steps(num_steps)
    t = _float(t)
    k = jnp.ceil(t * num_steps - 4.0 * jnp.finfo(t.dtype).eps * num_steps)
    return jnp.clip(k - 1, 0, num_steps - 1).astype(jnp.int32)
