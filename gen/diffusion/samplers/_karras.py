"""Karras et al. 2022 / k-diffusion samplers in the VE variable: Euler, Heun, Euler ancestral."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen.diffusion.samplers._conditioning import ClassConditional, Denoiser
from gen.diffusion.samplers._core import (
    _is_zero,
    _log_alpha_sigma,
    _noise,
    _Setup,
    _setup,
    _step_keys,
)
from gen.diffusion.samplers._grids import _invert_logsnr
from gen.diffusion.samplers._thresholding import X0Transform
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def _churn(
    schedule: Schedule,
    ts: Array,
    lam: Array,
    num_steps: int,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
) -> tuple[Array, Array, bool]:
    """Raised times ``t_hat`` and their log-SNR for Karras' churn, per step (vectorized).

    ``gamma_i = min(S_churn / N, sqrt(2) - 1)`` where ``S_tmin <= sigma_i <= S_tmax``, else 0;
    ``sigma_hat = sigma_i (1 + gamma_i)`` is turned into a time by bisection, and the sampler
    uses ``sigma(t_hat)``, the noise level the denoiser is told about (equal to ``sigma_hat``
    unless that exceeds the schedule's largest sigma, where t_hat = 1).
    """
    t, lam_t = ts[:-1], lam[:-1]
    if _is_zero(s_churn):
        return t, lam_t, False
    sigma = jnp.exp(-0.5 * lam_t)
    gamma = jnp.where(
        (sigma >= s_tmin) & (sigma <= s_tmax), min(s_churn / num_steps, math.sqrt(2.0) - 1.0), 0.0
    )
    lam_target = lam_t - 2.0 * jnp.log1p(gamma)
    t_hat = jnp.where(gamma > 0, _invert_logsnr(schedule, lam_target, t), t)
    lam_hat = jnp.where(gamma > 0, schedule(t_hat), lam_t)
    return t_hat, lam_hat, True


def _alpha(lam: Array, dtype: jnp.dtype) -> Array:
    """``alpha = sqrt(sigmoid(lambda))``: from VE ``x / alpha`` back to VP ``x``."""
    return jnp.exp(_log_alpha_sigma(lam)[0]).astype(dtype)


def _scan_ve(s: _Setup, step: Callable, xs: tuple[Array, ...]) -> Array:
    """Runs ``step`` under ``lax.scan`` on the VE variable ``x / alpha`` from ``s.x``, and
    returns the VP sample ``alpha_final x_VE``."""
    x_ve, _ = jax.lax.scan(step, s.x / _alpha(s.lam[0], s.x.dtype), xs)
    return _alpha(s.lam[-1], x_ve.dtype) * x_ve


def _karras(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    second_order: bool,
    key: Array | None,
    labels: ArrayLike | None,
    clip_x0: float | None,
    x0_transform: X0Transform | None,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> Array:
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0, x0_transform)
    t_hat, lam_hat, churned = _churn(schedule, s.ts, s.lam, s.num_steps, s_churn, s_tmin, s_tmax)
    name = "heun" if second_order else "euler"
    keys = _step_keys(key, s.num_steps, churned, f"{name} with s_churn > 0")

    def denoise_ve(x_ve: Array, t: Array, lam: Array) -> Array:
        return s.predict(_alpha(lam, x_ve.dtype) * x_ve, t, lam)[0]

    def step(x_ve: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        lam, th, lh, t_next, lam_next, k = inp
        sigma, sigma_hat = jnp.exp(-0.5 * lam), jnp.exp(-0.5 * lh)
        sigma_next = jnp.exp(-0.5 * lam_next)
        if churned:
            extra = jnp.sqrt(jnp.maximum(sigma_hat * sigma_hat - sigma * sigma, 0.0))
            x_ve = x_ve + (s_noise * extra).astype(x_ve.dtype) * _noise(k, x_ve)
        d = (x_ve - denoise_ve(x_ve, th, lh)) / sigma_hat
        dt = sigma_next - sigma_hat
        x_euler = (x_ve + dt * d).astype(x_ve.dtype)
        if not second_order:
            return x_euler, None

        def correct(_: None) -> Array:
            d_next = (x_euler - denoise_ve(x_euler, t_next, lam_next)) / sigma_next
            return (x_ve + dt * 0.5 * (d + d_next)).astype(x_ve.dtype)

        x_new = jax.lax.cond(sigma_next > 0, correct, lambda _: x_euler, None)
        return x_new, None

    return _scan_ve(s, step, (s.lam[:-1], t_hat, lam_hat, s.ts[1:], s.lam[1:], keys))


def euler(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    key: Array | None = None,
    labels: ArrayLike | None = None,
    clip_x0: float | None = None,
    x0_transform: X0Transform | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Array:
    """Euler on the probability-flow ODE in the VE variable, with EDM churn (Karras et al. 2022,
    Algorithm 2 without the correction; k-diffusion's ``sample_euler``).

    With ``x = x_VP / alpha`` and ``sigma = exp(-lambda / 2)``: ``d = (x - x0(x; sigma)) /
    sigma``, ``x <- x + (sigma_next - sigma) d``. Churn first raises the noise level,
    ``sigma_hat = sigma (1 + gamma)``, ``gamma = min(S_churn / N, sqrt(2) - 1)`` if
    ``S_tmin <= sigma <= S_tmax`` (VE sigma units) else 0, adding ``S_noise sqrt(sigma_hat^2 -
    sigma^2) z``, and evaluates the denoiser at ``(x_hat, t_hat)``, ``t_hat`` the time of
    ``sigma_hat`` (by bisection; diffusers' EulerDiscreteScheduler instead reuses the model output
    from before the churn). Without churn it is DDIM with eta = 0 (up to where clipping acts).
    Needs ``key`` when ``s_churn > 0``.
    """
    return _karras(
        denoiser,
        parameterization,
        schedule,
        x_T,
        ts,
        second_order=False,
        key=key,
        labels=labels,
        clip_x0=clip_x0,
        x0_transform=x0_transform,
        s_churn=s_churn,
        s_tmin=s_tmin,
        s_tmax=s_tmax,
        s_noise=s_noise,
    )


def heun(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    key: Array | None = None,
    labels: ArrayLike | None = None,
    clip_x0: float | None = None,
    x0_transform: X0Transform | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Array:
    """Heun's second-order method with EDM churn: Karras et al. 2022, Algorithm 2.

    As :func:`euler`, then, unless the step lands on ``sigma = 0``, the trapezoidal correction
    ``x <- x_hat + (sigma_next - sigma_hat) (d + d') / 2`` with ``d' = (x_euler - x0(x_euler;
    sigma_next)) / sigma_next``: ``2N - 1`` model calls for a grid ending at the clean data, as
    diffusers' HeunDiscreteScheduler. Needs ``key`` when ``s_churn > 0``.
    """
    return _karras(
        denoiser,
        parameterization,
        schedule,
        x_T,
        ts,
        second_order=True,
        key=key,
        labels=labels,
        clip_x0=clip_x0,
        x0_transform=x0_transform,
        s_churn=s_churn,
        s_tmin=s_tmin,
        s_tmax=s_tmax,
        s_noise=s_noise,
    )


def euler_ancestral(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    key: Array | None = None,
    labels: ArrayLike | None = None,
    clip_x0: float | None = None,
    x0_transform: X0Transform | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Array:
    """Euler ancestral (k-diffusion's ``sample_euler_ancestral``) in the VE variable.

    ``sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2))``,
    ``sigma_down = sqrt(sigma_next^2 - sigma_up^2)``; ``x <- x + (sigma_down - sigma) d +
    S_noise sigma_up z`` with ``d = (x - x0) / sigma``. No noise on a step to ``sigma = 0``.
    eta = 1 is diffusers' EulerAncestralDiscreteScheduler. Needs ``key`` unless eta = 0.
    """
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0, x0_transform)
    stochastic = not _is_zero(eta)
    keys = _step_keys(key, s.num_steps, stochastic, "euler_ancestral with eta != 0")

    def step(x_ve: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        t, lam, lam_next, k = inp
        sigma, sigma_next = jnp.exp(-0.5 * lam), jnp.exp(-0.5 * lam_next)
        x0, _ = s.predict(_alpha(lam, x_ve.dtype) * x_ve, t, lam)
        d = (x_ve - x0) / sigma
        if not stochastic:
            return (x_ve + (sigma_next - sigma) * d).astype(x_ve.dtype), None
        var_up = sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
        sigma_up = jnp.minimum(sigma_next, eta * jnp.sqrt(jnp.maximum(var_up, 0.0)))
        sigma_down = jnp.sqrt(jnp.maximum(sigma_next**2 - sigma_up**2, 0.0))
        x_new = x_ve + (sigma_down - sigma) * d + s_noise * sigma_up * _noise(k, x_ve)
        return x_new.astype(x_ve.dtype), None

    return _scan_ve(s, step, (s.ts[:-1], s.lam[:-1], s.lam[1:], keys))

