"""Noise schedules: pure functions of continuous time that return the log-SNR.

A schedule is a pure, elementwise function ``t in [0, 1] -> lambda(t)``, the log signal-to-noise
ratio, decreasing in t: t = 0 is (nearly) clean data and t = 1 is (nearly) pure noise::

    Schedule = Callable[[Array], Array]

Everything else derives from lambda:

- VP: ``alpha^2 = sigmoid(lambda)`` (diffusers' ``alphas_cumprod``), ``sigma^2 = sigmoid(-lambda)``;
- EDM / VE noise level: ``sigma_edm = sigma / alpha = exp(-lambda / 2)``;
- SNR: ``exp(lambda)``; derivatives through ``jax.jvp`` (:func:`dlogsnr_dt`).

Conventions shared by every schedule here:

- **Time outside [0, 1] is clipped into it.** The schedule is constant outside, so
  ``lambda(-0.5) == lambda(0)`` and ``lambda(1.5) == lambda(1)``, with zero t-derivative there.
  At t = 0 and t = 1 themselves the derivative is the one-sided derivative from inside.
- **dtype.** Integer and low-precision t are computed in float32; float64 t (under
  ``jax.enable_x64``) stays float64.
- **Finite ends.** Every constructor returns finite lambda at t = 0 and t = 1. The only infinite
  value is ``lambda = -inf`` at t = 1 after zero-terminal-SNR rescaling (or from betas ending in 1);
  there alpha = 0, sigma = 1, and the t-derivative of lambda is reported as 0 (the true one is
  -inf) so that nothing derived from it, values or gradients, is NaN.
- **Integer timesteps.** diffusers' integer timestep ``i in 0..T-1`` is continuous time
  ``t_i = (i + 1) / T``: ``alpha_bar_i = sigmoid(lambda(t_i))``. So t = 1 is the last timestep
  ``T - 1``, and t = 0 is the clean data before timestep 0. This is the convention under which
  diffusers' ``squaredcos_cap_v2`` betas discretize the continuous cosine ``alpha_bar(t)``
  (``beta_i = 1 - alpha_bar(t_i) / alpha_bar(t_i - 1/T)``), and under which vdm's
  ``discretize`` (``t -> ceil(t T) / T``) lands on the grid. See :func:`timestep_to_t`.

Example::

    >>> import jax.numpy as jnp
    >>> from gen.diffusion import schedules as S
    >>> sched = S.shift(S.cosine(), 2.0)           # a cosine schedule for 2x the resolution
    >>> alpha, sigma = S.alpha_sigma(sched, jnp.linspace(0.0, 1.0, 5))
    >>> abar = S.discrete_alphas_cumprod(S.ddpm_linear(), 1000)   # == diffusers' alphas_cumprod
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Schedule = Callable[[Array], Array]
Params = Any

__all__ = [
    "LearnedSchedule",
    "Schedule",
    "alpha_bar",
    "alpha_sigma",
    "alpha_sigma_and_derivatives",
    "alpha_sigma_from_logsnr",
    "cosine",
    "ddpm_linear",
    "discrete_alphas_cumprod",
    "discretize",
    "dlogsnr_dt",
    "edm",
    "edm_sigma",
    "edm_sigma_from_logsnr",
    "from_betas",
    "get",
    "interpolate",
    "learned",
    "logsnr_and_derivative",
    "logsnr_from_alpha_bar",
    "logsnr_from_edm_sigma",
    "rescale_zero_terminal_snr",
    "scaled_linear",
    "shift",
    "sigmoid",
    "snr",
    "t_to_timestep",
    "timestep_to_t",
]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Discrete schedules: from betas
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Continuous schedules
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Learned schedule (VDM)
# ----------------------------------------------------------------------------------------------


class LearnedSchedule(NamedTuple):
    """A schedule with parameters: ``apply(params, t) -> lambda``;
    ``functools.partial(apply, params)`` is a plain :data:`Schedule`.

    Attributes:
      init: ``init(key) -> params``.
      apply: ``apply(params, t) -> lambda(t)``, decreasing in t for any params.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def learned(
    gamma_min: float = -13.3, gamma_max: float = 5.0, num_features: int = 1024
) -> LearnedSchedule:
    """VDM's learned monotone schedule (Kingma et al. 2021, ``NoiseSchedule_NNet``).

    The network is increasing in t because every weight enters through its absolute value:
    ``h(t) = |w1| t + sum_k |w3_k| (2 sigmoid(|w2_k| (2t - 1) + b2_k) - 1) / num_features``.
    ``gamma = -lambda`` is h rescaled so that its endpoints are fixed:
    ``gamma(t) = gamma_min + (gamma_max - gamma_min) (h(t) - h(0)) / (h(1) - h(0))``, so
    ``lambda(0) = -gamma_min`` and ``lambda(1) = -gamma_max``. The init follows VDM (``w1 =
    gamma_max - gamma_min``, ``w2, w3 ~ N(0, 0.01^2)``, ``b2 = 0``): nearly linear in gamma.
    The defaults are VDM's CIFAR-10 endpoints.
    """
    if not gamma_min < gamma_max:
        raise ValueError(
            f"learned: need gamma_min < gamma_max, got gamma_min={gamma_min}, "
            f"gamma_max={gamma_max}."
        )
    num_features = _check_steps(num_features, "num_features")

    def init(key: Array) -> dict[str, Array]:
        k2, k3 = jax.random.split(key)
        return {
            "w1": jnp.asarray(gamma_max - gamma_min, jnp.float32),
            "w2": 0.01 * jax.random.normal(k2, (num_features,), jnp.float32),
            "b2": jnp.zeros((num_features,), jnp.float32),
            "w3": 0.01 * jax.random.normal(k3, (num_features,), jnp.float32),
        }

    def net(params: dict[str, Array], t: Array) -> Array:
        hidden = (2.0 * t - 1.0)[..., None] * jnp.abs(params["w2"]) + params["b2"]
        hidden = 2.0 * jax.nn.sigmoid(hidden) - 1.0
        return jnp.abs(params["w1"]) * t + hidden @ jnp.abs(params["w3"]) / num_features

    def apply(params: dict[str, Array], t: ArrayLike) -> Array:
        t = _as_time(t)
        h = net(params, t)
        ends = net(params, jnp.asarray([0.0, 1.0], t.dtype))
        span = jnp.maximum(ends[1] - ends[0], jnp.finfo(h.dtype).tiny)
        gamma = gamma_min + (gamma_max - gamma_min) * ((h - ends[0]) / span)
        return -gamma

    return LearnedSchedule(init, apply)


# ----------------------------------------------------------------------------------------------
# Combinators
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Discrete view and lookup
# ----------------------------------------------------------------------------------------------


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


def _squaredcos_cap_v2(num_steps: int = 1000, **kwargs: Any) -> Schedule:
    return cosine(num_steps=num_steps, **kwargs)


_REGISTRY: dict[str, Callable[..., Schedule]] = {
    "ddpm_linear": ddpm_linear,
    "linear": ddpm_linear,  # diffusers' name
    "scaled_linear": scaled_linear,
    "cosine": cosine,
    "squaredcos_cap_v2": _squaredcos_cap_v2,  # diffusers' name: cosine(num_steps=1000)
    "sigmoid": sigmoid,
    "edm": edm,
}


def get(name: str, **kwargs: Any) -> Schedule:
    """The schedule called ``name``, built with ``kwargs``; diffusers' names are accepted too
    (``"linear"``, ``"squaredcos_cap_v2"``, which defaults to ``num_steps=1000``)."""
    try:
        constructor = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown noise schedule {name!r}; known schedules: {', '.join(sorted(_REGISTRY))}. "
            "(The learned VDM schedule is an (init, apply) pair: use schedules.learned().)"
        ) from None
    return constructor(**kwargs)
