"""Continuous schedules: cosine (improved DDPM), sigmoid (Chen 2023) and EDM (Karras 2022)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from gen.diffusion.schedules._common import (
    Array,
    ArrayLike,
    Schedule,
    _as_time,
    _check_steps,
    _one_minus,
)
from gen.diffusion.schedules._discrete import from_betas


def _check_logsnr_range(logsnr_min: float, logsnr_max: float, name: str) -> None:
    if not (math.isfinite(logsnr_min) and math.isfinite(logsnr_max) and logsnr_min < logsnr_max):
        raise ValueError(
            f"{name}: need finite logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}."
        )


def cosine(
    num_steps: int | None = None,
    s: float = 0.008,
    *,
    max_beta: float = 0.999,
    logsnr_min: float = -20.0,
    logsnr_max: float = 20.0,
) -> Schedule:
    """The cosine schedule of improved DDPM (Nichol & Dhariwal 2021).

    ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos((t + s) / (1 + s) * pi / 2) ** 2``.

    - ``num_steps=T``: the discrete schedule with its beta cap, diffusers' ``squaredcos_cap_v2``:
      ``beta_i = min(1 - f((i + 1) / T) / f(i / T), max_beta)`` (in float64, then float32 as in
      diffusers), through :func:`from_betas`.
    - ``num_steps=None``: the continuous schedule. With ``a = pi / (2 (1 + s))`` its log-SNR is
      ``lambda(u) = 2 log sin(a (1 - u)) - log sin(a u) - log sin(a (u + 2 s))``, which is
      +inf at u = 0 and -inf at u = 1; time is mapped affinely, ``u = u_min + t (u_max - u_min)``,
      so that ``lambda(0) = logsnr_max`` and ``lambda(1) = logsnr_min`` (as simple diffusion
      does for its cosine). With the default +-20 this moves u by less than 3e-5. ``s = 0`` with
      ``logsnr_min=-15, logsnr_max=15`` is simple diffusion's ``-2 log tan(pi u / 2)`` schedule.
    """
    if s < 0:
        raise ValueError(f"cosine: need s >= 0, got s={s}.")
    if num_steps is not None:
        num_steps = _check_steps(num_steps)
        if not 0.0 < max_beta <= 1.0:
            raise ValueError(f"cosine: need 0 < max_beta <= 1, got {max_beta}.")

        def f(time: float) -> float:  # the exact expression diffusers evaluates, in float64
            return math.cos((time + s) / (1 + s) * math.pi / 2) ** 2

        betas = [
            min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta) for i in range(num_steps)
        ]
        return from_betas(np.asarray(betas, np.float64))

    _check_logsnr_range(logsnr_min, logsnr_max, "cosine")
    a = math.pi / (2.0 * (1.0 + s))
    u0 = a * s
    # Solve lambda(u) = logsnr_max near u = 0 and lambda(u) = logsnr_min near u = 1, in float64:
    # sin^2(a(u+s)) = sin^2(u0) + sigmoid(-lambda) cos^2(u0) and cos(a(u+s)) = sqrt(abar) cos(u0).
    noise_var = 1.0 / (1.0 + math.exp(logsnr_max))
    u_min = math.asin(math.sqrt(math.sin(u0) ** 2 + noise_var * math.cos(u0) ** 2)) / a - s
    signal = math.sqrt(1.0 / (1.0 + math.exp(-logsnr_min)))
    one_minus_u_max = math.asin(signal * math.cos(u0)) / a
    width = (1.0 - one_minus_u_max) - u_min

    def schedule(t: ArrayLike) -> Array:
        t = _as_time(t)
        u = u_min + t * width
        one_minus_u = one_minus_u_max + _one_minus(t) * width
        return (
            2.0 * jnp.log(jnp.sin(a * one_minus_u))
            - jnp.log(jnp.sin(a * u))
            - jnp.log(jnp.sin(a * (u + 2.0 * s)))
        )

    return schedule


def sigmoid(
    start: float = -3.0,
    end: float = 3.0,
    tau: float = 1.0,
    *,
    logsnr_min: float = -20.0,
    logsnr_max: float = 20.0,
) -> Schedule:
    """The sigmoid schedule of Jabri et al. 2022 (RIN) and Chen 2023 ("On the importance of noise
    scheduling for diffusion models", Algorithm 1).

    ``alpha_bar(u) = (v_end - sigmoid((u (end - start) + start) / tau)) / (v_end - v_start)``
    with ``v_start = sigmoid(start / tau)``, ``v_end = sigmoid(end / tau)``. In closed form, with
    ``z = start + u (end - start)`` and ``d = (end - start) / tau``,

    ``lambda(u) = -z / tau + log(-expm1(-(1 - u) d)) - log(-expm1(-u d))
    + log_sigmoid(end / tau) - log_sigmoid(-start / tau)``,

    free of the cancellations of the ratio. lambda(0) = +inf and lambda(1) = -inf, so time is
    mapped affinely onto ``[u_min, u_max]`` with ``lambda(0) = logsnr_max`` and ``lambda(1) =
    logsnr_min`` (Chen clips alpha_bar at 1e-9 instead, log-SNR -20.7). With the defaults, u
    moves by less than 1e-8.
    """
    if not start < end:
        raise ValueError(f"sigmoid: need start < end, got start={start}, end={end}.")
    if not tau > 0:
        raise ValueError(f"sigmoid: need tau > 0, got tau={tau}.")
    _check_logsnr_range(logsnr_min, logsnr_max, "sigmoid")
    d = (end - start) / tau
    # log_sigmoid(end / tau) - log_sigmoid(-start / tau):
    const = _softplus(start / tau) - _softplus(-end / tau)

    def logsnr(u: Any, one_minus_u: Any, xp: Any) -> Any:
        z = start + u * (end - start)
        return -z / tau + xp.log(-xp.expm1(-one_minus_u * d)) - xp.log(-xp.expm1(-u * d)) + const

    # lambda(u) = logsnr_max at a tiny u (solved for u) and logsnr_min at u close to 1 (solved for
    # 1 - u, which float64 resolves there), by bisection in float64.
    u_min = _bisect(lambda u: -logsnr(u, 1.0 - u, np), -logsnr_max)
    one_minus_u_max = _bisect(lambda v: logsnr(1.0 - v, v, np), logsnr_min)
    width = (1.0 - one_minus_u_max) - u_min

    def schedule(t: ArrayLike) -> Array:
        t = _as_time(t)
        return logsnr(u_min + t * width, one_minus_u_max + _one_minus(t) * width, jnp)

    return schedule


def _softplus(x: float) -> float:
    """``log(1 + exp(x))`` for a Python float, without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _bisect(f: Callable[[float], float], target: float) -> float:
    """The root of ``f(x) = target`` on (0, 1) for an increasing f, by float64 bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(1100):  # enough to reach the smallest float64 scales
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def edm(sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Schedule:
    """The EDM / Karras et al. 2022 schedule, with t = 0 the least noise and t = 1 the most.

    ``sigma(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`` and
    ``lambda(t) = -2 log sigma(t) = -2 rho log(sigma_min^(1/rho) + t (...))``. Karras' sampling
    steps ``sigma_i`` (i = 0..N-1, from sigma_max down) are ``t = 1 - i / (N - 1)``; see
    :func:`gen.diffusion.timesteps.karras`.
    """
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(
            f"edm: need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}."
        )
    if not rho > 0:
        raise ValueError(f"edm: need rho > 0, got rho={rho}.")
    lo = sigma_min ** (1.0 / rho)
    span = sigma_max ** (1.0 / rho) - lo

    def schedule(t: ArrayLike) -> Array:
        t = _as_time(t)
        return -2.0 * rho * jnp.log(lo + t * span)

    return schedule
