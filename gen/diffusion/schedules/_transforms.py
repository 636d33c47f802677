"""Schedule transforms: closures that return a new schedule (shift, interpolate, discretize,
zero-terminal-SNR rescaling)."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen.diffusion.schedules._common import (
    Array,
    ArrayLike,
    Schedule,
    _as_time,
    _check_steps,
    _log_alpha,
    _safe_log,
    _safe_scale,
)


def shift(schedule: Schedule, factor: float) -> Schedule:
    """Resolution shift: ``lambda(t) - 2 log(factor)``; the SNR is divided by ``factor^2``.

    This is simple diffusion's shifted schedule (Hoogeboom et al. 2023, ``logsnr(t) +
    2 log(noise_d / image_d)``) with ``factor = image_d / noise_d``, e.g. 512 / 64 = 8. It is also
    SD3's timestep shift (Esser et al. 2024): for rectified flow, ``lambda = 2 log((1 - t) / t)``,
    and ``t' = f t / (1 + (f - 1) t)`` gives ``lambda(t') = lambda(t) - 2 log f``.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"shift: need a finite factor > 0, got {factor}.")
    offset = 2.0 * math.log(factor)

    def shifted(t: ArrayLike) -> Array:
        return schedule(t) - offset

    return shifted


def interpolate(s1: Schedule, s2: Schedule, w: float | Callable[[Array], Array]) -> Schedule:
    """Log-SNR interpolation: ``lambda(t) = (1 - w) lambda_1(t) + w lambda_2(t)``.

    ``w`` is a constant in [0, 1], or a function of t with values in [0, 1]. ``w = lambda t: t``
    gives simple diffusion's interpolated schedule, ``t lambda_lo(t) + (1 - t) lambda_hi(t)``, as
    ``interpolate(shifted_hi, shifted_lo, lambda t: t)``. A constant w keeps lambda decreasing; a
    w(t) increasing in t does too when ``lambda_2 <= lambda_1`` everywhere (as there).
    ``0 * (-inf)`` counts as 0.
    """
    if not callable(w) and not 0.0 <= w <= 1.0:
        raise ValueError(f"interpolate: need a weight w in [0, 1], got {w}.")

    def interpolated(t: ArrayLike) -> Array:
        t = _as_time(t)
        lam1, lam2 = s1(t), s2(t)
        wt = w(t) if callable(w) else w
        wt = jnp.broadcast_to(jnp.asarray(wt, lam1.dtype), lam1.shape)
        return _safe_scale(1.0 - wt, lam1) + _safe_scale(wt, lam2)

    return interpolated


def discretize(schedule: Schedule, num_steps: int) -> Schedule:
    """vdm's discrete time: ``lambda(ceil(t T) / T)``, constant on each ``(i/T, (i+1)/T]``.

    Under the convention ``t_i = (i + 1) / T``, t in ``((i)/T, (i+1)/T]`` evaluates timestep i;
    t = 0 stays 0. t within a few float ulps above a grid point counts as that grid point (so that
    ``0.3`` with T = 10 is 3/10 and not 4/10, whatever its float32 rounding). Non-increasing, not
    strictly decreasing; its t-derivative is 0 almost everywhere.
    """
    num_steps = _check_steps(num_steps)

    def discrete(t: ArrayLike) -> Array:
        t = _as_time(t)
        k = jnp.ceil(t * num_steps - 4.0 * jnp.finfo(t.dtype).eps * num_steps)
        k = jax.lax.stop_gradient(jnp.clip(k, 0, num_steps))
        return schedule(k / num_steps)

    return discrete


def rescale_zero_terminal_snr(schedule: Schedule, num_steps: int | None = None) -> Schedule:
    """Zero terminal SNR (Lin et al. 2023, "Common diffusion noise schedules and sample steps are
    flawed", Algorithm 1), for a continuous schedule.

    ``sqrt(alpha_bar)`` is mapped affinely so that it is unchanged at the anchor ``t_a`` and 0 at
    t = 1: ``s(t) = a_0 (a(t) - a_1) / (a_0 - a_1)`` with ``a = sqrt(alpha_bar)``, ``a_0 =
    a(t_a)``, ``a_1 = a(1)``. So ``lambda(1) = -inf``: alpha = 0, sigma = 1 there, and the
    t-derivative is reported as 0 (the true one is -inf) to keep everything derived NaN-free.

    - ``num_steps=None``: the anchor is t = 0.
    - ``num_steps=T``: the anchor is the first integer timestep ``t_0 = 1 / T``, as in Algorithm 1,
      so ``discrete_alphas_cumprod`` of the result equals Algorithm 1 applied to the original
      schedule's ``alphas_cumprod``. On ``[0, t_0]`` the schedule is left unchanged.

    ``lambda = 2 log s - log(1 - s) - log(1 + s)`` is evaluated with ``1 - s = (a_0 sigma^2 / (1 +
    a) - a_1 sigma_0^2 / (1 + a_0)) / (a_0 - a_1)``, which has no cancellation when alpha_bar ~ 1.
    """
    anchor = 0.0 if num_steps is None else 1.0 / _check_steps(num_steps)

    def rescaled(t: ArrayLike) -> Array:
        t = _as_time(t)
        lam = schedule(t)
        ends = schedule(jnp.asarray([anchor, 1.0], t.dtype))
        log_a, log_a0, log_a1 = _log_alpha(lam), _log_alpha(ends[0]), _log_alpha(ends[1])
        a, a0, a1 = jnp.exp(log_a), jnp.exp(log_a0), jnp.exp(log_a1)
        var, var0 = jax.nn.sigmoid(-lam), jax.nn.sigmoid(-ends[0])  # sigma^2, sigma_0^2
        diff = a - a1
        positive = (diff > 0) & (t < 1)
        log_s = log_a0 + _safe_log(diff, positive) - jnp.log(a0 - a1)
        one_minus_s = (a0 * var / (1.0 + a) - a1 * var0 / (1.0 + a0)) / (a0 - a1)
        one_minus_s = jnp.maximum(one_minus_s, jnp.finfo(lam.dtype).tiny)
        lam_new = 2.0 * log_s - jnp.log(one_minus_s) - jnp.log1p(jnp.exp(log_s))
        lam_new = jnp.where(positive, lam_new, -jnp.inf)  # -inf with a zero t-derivative
        return jnp.where(t < anchor, lam, lam_new)

    return rescaled
