"""Discrete schedules from betas (diffusers' ``linear`` and ``scaled_linear``), and the discrete
view of any schedule (``discrete_alphas_cumprod``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion.schedules._common import (
    Array,
    ArrayLike,
    Schedule,
    _as_time,
    _check_steps,
    _logit64,
    _safe_log,
)


def _torch_linspace_f32(start: float, end: float, num: int) -> np.ndarray:
    """``torch.linspace(start, end, num, dtype=torch.float32)`` on CPU, bit for bit.

    torch computes ``step = (end - start) / (num - 1)`` in float32, fills the first half as
    ``start + step * i`` and the second as ``end - step * (num - 1 - i)``, each with one rounding
    (the compiler fuses the multiply-add), which is what float64 arithmetic rounded once gives.
    ``np.linspace(...).astype(np.float32)`` differs from it in the last bit for ~20% of entries.
    """
    a, b = np.float32(start), np.float32(end)
    if num == 1:
        return np.array([a], np.float32)
    step = np.float64((b - a) / np.float32(num - 1))
    i = np.arange(num, dtype=np.float64)
    head = np.float64(a) + step * i
    tail = np.float64(b) - step * (num - 1 - i)
    return np.where(i < num // 2, head, tail).astype(np.float32)


def _alphas_cumprod_like_diffusers(betas: np.ndarray) -> np.ndarray:
    """diffusers' ``alphas_cumprod`` on CPU: float32 betas, ``1 - betas`` in float32, cumprod
    accumulated in float64 (torch's CPU cumprod accumulates float32 in double), stored as float32.
    Returned as float64 holding those float32 values."""
    betas32 = np.asarray(betas, np.float32)
    alphas32 = np.float32(1.0) - betas32
    return np.cumprod(alphas32.astype(np.float64)).astype(np.float32).astype(np.float64)


def _validate_betas(betas: ArrayLike) -> np.ndarray:
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"from_betas: expected a non-empty 1-D array of betas, got {b.shape}.")
    if not np.all(np.isfinite(b)) or np.any(b <= 0) or np.any(b > 1):
        raise ValueError("from_betas: every beta must be finite and in (0, 1].")
    b32 = b.astype(np.float32)
    if np.any(np.float32(1.0) - b32 == 1.0):
        raise ValueError(
            "from_betas: betas below ~6e-8 vanish in float32 (1 - beta == 1), which would give an "
            "infinite log-SNR; diffusers computes alphas_cumprod in float32."
        )
    if np.any(b32[:-1] >= 1.0):
        raise ValueError(
            "from_betas: only the last beta may be 1 (zero terminal SNR); got beta = 1 at "
            f"timestep {int(np.argmax(b32 >= 1.0))} of {b.size}."
        )
    if b.size == 1 and b32[0] >= 1.0:
        raise ValueError("from_betas: a zero terminal SNR needs at least two timesteps.")
    return b


def from_betas(betas: ArrayLike) -> Schedule:
    """The continuous schedule of a discrete beta array, exact at the integer timesteps.

    ``alpha_bar_i = prod_{j <= i} (1 - beta_j)`` is computed as diffusers does on CPU (float32
    betas and ``1 - beta``, the product accumulated in float64, the result rounded to float32),
    and ``lambda_i = logit(alpha_bar_i)`` in float64. With ``T = len(betas)``:

    - ``lambda(t_i) = lambda_i`` at ``t_i = (i + 1) / T`` (so ``lambda(1) = lambda_{T-1}``);
    - between grid points lambda is linear in t;
    - on ``[0, t_0)`` the first segment is continued linearly: ``lambda(0) = 2 lambda_0 -
      lambda_1`` (for T = 1, ``lambda(0) = lambda_0 + log 2``, the same rule for constant small
      betas, where ``lambda_i ~ -log(beta (i + 1))``);
    - a last beta of 1 (zero terminal SNR, e.g. from diffusers' ``rescale_zero_terminal_snr``)
      gives ``alpha_bar_{T-1} = 0``: on the last segment ``sqrt(alpha_bar)`` is linear in t, down
      to 0 at t = 1, so lambda falls continuously to -inf.

    Only the last beta may be 1; all must lie in (0, 1].
    """
    b = _validate_betas(betas)
    abar = _alphas_cumprod_like_diffusers(b)
    return _interpolated(_logit64(abar))


def _interpolated(lam_grid: np.ndarray) -> Schedule:
    """Piecewise-linear log-SNR through ``(t_i, lam_grid[i])``; see :func:`from_betas`."""
    num = lam_grid.size
    zero_terminal = bool(np.isneginf(lam_grid[-1]))
    finite = lam_grid[:-1] if zero_terminal else lam_grid
    if num >= 2 and np.isfinite(lam_grid[1]):
        first_step = lam_grid[0] - lam_grid[1]
    else:
        first_step = math.log(2.0)
    # Knots at t = k / T, k = 0..T. With zero terminal SNR the last knot is only a placeholder;
    # the last segment is computed from sqrt(alpha_bar) instead.
    knots = np.concatenate([[lam_grid[0] + first_step], finite])
    if zero_terminal:
        knots = np.concatenate([knots, [knots[-1] - 1.0]])
        log_alpha_last = 0.5 * float(-np.logaddexp(0.0, -knots[-2]))  # log sqrt(alpha_bar_{T-2})

    def schedule(t: ArrayLike) -> Array:
        t = _as_time(t)
        u = t * num
        k = jnp.clip(jnp.floor(u), 0, num - 1)
        w = u - k
        ki = k.astype(jnp.int32)
        table = jnp.asarray(knots, t.dtype)
        lo, hi = table[ki], table[ki + 1]
        lam = lo + w * (hi - lo)
        if zero_terminal:
            # sqrt(alpha_bar) = a (1 - w) on the last segment, a = sqrt(alpha_bar_{T-2}):
            # lambda = 2 log a + 2 log(1 - w) - log(1 - a^2 (1 - w)^2).
            last = ki == num - 1
            inside = w < 1
            w_safe = jnp.where(last & inside, w, jnp.zeros_like(w))
            log_one_minus_w = _safe_log(1.0 - w_safe, inside | ~last)
            log_alpha = log_alpha_last + log_one_minus_w
            lam_last = 2.0 * log_alpha - jnp.log1p(-jnp.exp(2.0 * log_alpha))
            lam = jnp.where(last, lam_last, lam)
        return lam

    return schedule


def ddpm_linear(
    beta_start: float = 1e-4, beta_end: float = 0.02, num_steps: int = 1000
) -> Schedule:
    """DDPM's linear betas (Ho et al. 2020): ``beta_i = linspace(beta_start, beta_end, T)[i]``.

    diffusers' ``beta_schedule="linear"``: ``torch.linspace`` in float32, reproduced bit for bit.
    See :func:`from_betas` for the continuous interpolation and the t mapping.
    """
    num_steps = _check_steps(num_steps)
    _check_beta_range(beta_start, beta_end, "ddpm_linear")
    return from_betas(_torch_linspace_f32(beta_start, beta_end, num_steps))


def scaled_linear(
    beta_start: float = 0.00085, beta_end: float = 0.012, num_steps: int = 1000
) -> Schedule:
    """Latent/Stable Diffusion's betas: ``linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2``.

    diffusers' ``beta_schedule="scaled_linear"`` (float32 linspace, squared in float32).
    """
    num_steps = _check_steps(num_steps)
    _check_beta_range(beta_start, beta_end, "scaled_linear")
    root = _torch_linspace_f32(beta_start**0.5, beta_end**0.5, num_steps)
    return from_betas(root * root)


def _check_beta_range(beta_start: float, beta_end: float, name: str) -> None:
    if not 0.0 < beta_start < beta_end < 1.0:
        raise ValueError(
            f"{name}: need 0 < beta_start < beta_end < 1, got beta_start={beta_start}, "
            f"beta_end={beta_end}."
        )


def discrete_alphas_cumprod(schedule: Schedule, num_steps: int) -> np.ndarray:
    """``alpha_bar`` at diffusers' integer timesteps ``0..T-1``, i.e. ``sigmoid(lambda(t_i))`` at
    ``t_i = (i + 1) / T``, as a float32 numpy array like diffusers' ``alphas_cumprod``.

    Evaluated on the host in float64 (``jax.enable_x64``), then rounded to float32, so that for
    ``ddpm_linear``, ``scaled_linear`` and ``cosine(num_steps=T)`` it is exactly
    ``DDPMScheduler(beta_schedule=...).alphas_cumprod`` for ``"linear"``, ``"scaled_linear"`` and
    ``"squaredcos_cap_v2"``.
    Not for use under ``jit``.
    """
    num_steps = _check_steps(num_steps)
    t = (np.arange(num_steps, dtype=np.float64) + 1.0) / num_steps
    with jax.enable_x64(True):
        fn = jax.jit(lambda x: jax.nn.sigmoid(jnp.asarray(schedule(x), jnp.float64)))
        abar = np.asarray(fn(jnp.asarray(t, jnp.float64)))
    return abar.astype(np.float32)
