"""DDPM ancestral sampling and DDIM, in the VP variable."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen.diffusion.samplers._conditioning import ClassConditional, Denoiser
from gen.diffusion.samplers._core import (
    _is_zero,
    _log_alpha_sigma,
    _noise,
    _setup,
    _step_keys,
)
from gen.diffusion.samplers._grids import _target_logsnr
from gen.diffusion.samplers._thresholding import X0Transform
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

VARIANCES = ("small", "large", "learned_range")
_LOG_MIN_VARIANCE = math.log(1e-20)  # diffusers' floor on beta_tilde before its log


def ddpm(
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
    variance: str = "small",
) -> Array:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) on any decreasing grid.

    From t to the next time s, with ``alpha_{t|s} = alpha_t / alpha_s`` and ``beta = 1 -
    alpha_t^2 / alpha_s^2`` (``1 - alpha_bar_t / alpha_bar_s``, the beta of a discrete schedule
    at integer timesteps):

    ``x_s = alpha_s beta / sigma_t^2 x0 + alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + std z``,

    ``std^2 = beta_tilde = beta sigma_s^2 / sigma_t^2`` (``variance="small"``, the
    posterior's), ``beta`` (``"large"``), or learned (``"learned_range"``, Nichol & Dhariwal
    2021, eq. 15): ``log std^2 = f log beta + (1 - f) log beta_tilde``, ``f = (v + 1) / 2``,
    where the denoiser returns 2C channels on the last axis, its prediction and v
    (:func:`gen.diffusion.process.split_variance`; diffusers' ``variance_type="learned_range"``,
    ``beta_tilde`` floored at 1e-20 as there). x0 comes from the model (clipped with
    ``clip_x0``). No noise is added on a step that lands on the clean data (``ts[-1] = 0``), as
    Algorithm 2's ``z = 0`` at t = 1 and diffusers' DDPMScheduler for grids ending at timestep 0
    (diffusers also adds noise on a last step from a timestep > 0, e.g. with ``steps_offset=1``;
    we do not). Needs ``key``.
    """
    if variance not in VARIANCES:
        raise ValueError(f"ddpm: variance must be one of {', '.join(VARIANCES)}; got {variance!r}.")
    learned = variance == "learned_range"
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0, x0_transform,
               learned_variance=learned)
    keys = _step_keys(key, s.num_steps, True, "ddpm")

    def step(x: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        t, lam_t, lam_s, k = inp
        x0, _, *v = s.predict(x, t, lam_t)
        la_t, ls_t = _log_alpha_sigma(lam_t)
        la_s, ls_s = _log_alpha_sigma(lam_s)
        beta = -jnp.expm1(2.0 * (la_t - la_s))
        ratio = jnp.exp(2.0 * (ls_s - ls_t))  # sigma_s^2 / sigma_t^2
        c_x0 = jnp.exp(la_s - 2.0 * ls_t) * beta
        c_xt = jnp.exp(la_t - la_s) * ratio
        if learned:
            log_beta = jnp.log(beta)
            log_beta_tilde = jnp.maximum(log_beta + 2.0 * (ls_s - ls_t), _LOG_MIN_VARIANCE)
            frac = 0.5 * (v[0] + 1.0)
            std = jnp.exp(0.5 * (frac * log_beta + (1.0 - frac) * log_beta_tilde))
        else:
            std = jnp.sqrt(beta * ratio if variance == "small" else beta)
        std = jnp.where(jnp.isinf(lam_s), 0.0, std)
        x_next = c_x0 * x0 + c_xt * x + std.astype(x.dtype) * _noise(k, x)
        return x_next.astype(x.dtype), None

    xs = (s.ts[:-1], s.lam[:-1], s.lam[1:], keys)
    x, _ = jax.lax.scan(step, s.x, xs)
    return x


def ddim(
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
    eta: float = 0.0,
    targets: ArrayLike | None = None,
) -> Array:
    """DDIM (Song et al. 2021, eq. 12): from t to the next time s,

    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - std^2) eps + std z``,
    ``std = eta sqrt((sigma_s^2 / sigma_t^2) (1 - alpha_t^2 / alpha_s^2))``.

    eta = 0 is deterministic, eta = 1 is DDPM with the small variance. With ``clip_x0`` the x0 is
    clipped but eps stays the model's, as diffusers' DDIMScheduler (``use_clipped_model_output=
    False``). **Final step**: the "previous alpha_bar" of the last step is that of ``ts[-1]``;
    ``ts[-1] = 0`` gives ``alpha_bar = 1`` (diffusers' ``set_alpha_to_one=True``), ``ts[-1] =
    1/T`` gives ``alphas_cumprod[0]`` (``False``), see :func:`times_from_timesteps`.
    **Targets.** Step i lands on ``targets[i]`` (default ``ts[i + 1]``, where the next step
    starts). diffusers' DDIMScheduler steps from timestep k to ``k - T // N``, the next grid
    entry only for "leading" spacing; with "trailing" or "linspace" and N not dividing T it
    lands elsewhere (e.g. T = 1000, N = 7, trailing: 999 -> 857 while the next model call is at
    856). ``targets=samplers.diffusers_ddim_targets(timesteps, T)`` reproduces that. Needs
    ``key`` unless eta = 0.
    """
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0, x0_transform)
    stochastic = not _is_zero(eta)
    keys = _step_keys(key, s.num_steps, stochastic, "ddim with eta != 0")
    lam_next = s.lam[1:] if targets is None else _target_logsnr(schedule, s.ts, targets)

    def step(x: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        t, lam_t, lam_s, k = inp
        x0, eps = s.predict(x, t, lam_t)
        la_t, ls_t = _log_alpha_sigma(lam_t)
        la_s, ls_s = _log_alpha_sigma(lam_s)
        x_next = jnp.exp(la_s) * x0
        if stochastic:
            var_s = jnp.exp(2.0 * ls_s)
            var = -jnp.expm1(2.0 * (la_t - la_s)) * jnp.exp(2.0 * (ls_s - ls_t))
            std = eta * jnp.sqrt(var)
            direction = jnp.sqrt(jnp.maximum(var_s - std * std, 0.0))
            x_next = x_next + direction * eps + jnp.asarray(std, x.dtype) * _noise(k, x)
        else:
            x_next = x_next + jnp.exp(ls_s) * eps
        return x_next.astype(x.dtype), None

    xs = (s.ts[:-1], s.lam[:-1], lam_next, keys)
    x, _ = jax.lax.scan(step, s.x, xs)
    return x

