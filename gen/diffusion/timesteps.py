"""Time grids for sampling, each a function of its own.

- Integer timesteps in diffusers' conventions (``DDIMScheduler.set_timesteps``, Lin et al. 2023,
  Table 2): :func:`leading`, :func:`trailing`, :func:`linspace`. They return int64 numpy arrays in
  descending order, as diffusers does. Timestep i is continuous time ``(i + 1) / T``
  (:func:`gen.diffusion.schedules.timestep_to_t`).
- Karras et al. 2022's noise levels: :func:`karras` (float64 numpy, descending).
- A continuous grid uniform in log-SNR: :func:`uniform_logsnr` (jax, traceable).

These grids are static hyperparameters of a sampler: compute them once, outside ``jit``, and
close over them (except :func:`uniform_logsnr`, which may also run inside ``jit``).

Example::

    >>> from gen.diffusion import timesteps
    >>> timesteps.trailing(1000, 4)
    array([999, 749, 499, 249])
    >>> timesteps.leading(1000, 4, steps_offset=1)
    array([751, 501, 251,   1])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion.schedules import Schedule, _check_steps

Array = jax.Array

__all__ = ["karras", "leading", "linspace", "trailing", "uniform_logsnr"]


def _check_inference_steps(num_train_steps: int, num_inference_steps: int) -> tuple[int, int]:
    num_train_steps = _check_steps(num_train_steps, "num_train_steps")
    num_inference_steps = _check_steps(num_inference_steps, "num_inference_steps")
    if num_inference_steps > num_train_steps:
        raise ValueError(
            f"num_inference_steps ({num_inference_steps}) cannot exceed num_train_steps "
            f"({num_train_steps}): a model trained on {num_train_steps} timesteps has no others."
        )
    return num_train_steps, num_inference_steps


def leading(num_train_steps: int, num_inference_steps: int, steps_offset: int = 0) -> np.ndarray:
    """diffusers' ``"leading"`` spacing: ``arange(N) * (T // N) + steps_offset``, descending.

    The default of DDIMScheduler; Stable Diffusion uses ``steps_offset=1``. A ValueError is raised
    if the offset pushes a timestep past ``T - 1`` (diffusers would index out of range).
    """
    num_train_steps, num = _check_inference_steps(num_train_steps, num_inference_steps)
    if isinstance(steps_offset, bool) or int(steps_offset) != steps_offset or steps_offset < 0:
        raise ValueError(f"steps_offset must be an integer >= 0, got {steps_offset!r}.")
    step_ratio = num_train_steps // num
    timesteps = (np.arange(0, num) * step_ratio).round()[::-1].copy().astype(np.int64)
    timesteps += int(steps_offset)
    if timesteps[0] >= num_train_steps:
        raise ValueError(
            f"leading: steps_offset={steps_offset} puts timestep {timesteps[0]} beyond the last "
            f"training timestep {num_train_steps - 1}."
        )
    return timesteps


def trailing(num_train_steps: int, num_inference_steps: int) -> np.ndarray:
    """diffusers' ``"trailing"`` spacing: ``round(arange(T, 0, -T / N)) - 1``, descending.

    Starts at the last timestep ``T - 1``, as Lin et al. 2023 recommend. For some (T, N), such as
    (1000, 61), float rounding makes diffusers' ``arange`` one element too long, and its last
    timestep is -1; we return its first N timesteps, which are exactly diffusers' others.
    """
    num_train_steps, num = _check_inference_steps(num_train_steps, num_inference_steps)
    step_ratio = num_train_steps / num
    timesteps = np.round(np.arange(num_train_steps, 0, -step_ratio)).astype(np.int64)
    return timesteps[:num] - 1


def linspace(num_train_steps: int, num_inference_steps: int) -> np.ndarray:
    """diffusers' ``"linspace"`` spacing: ``round(linspace(0, T - 1, N))``, descending."""
    num_train_steps, num = _check_inference_steps(num_train_steps, num_inference_steps)
    grid = np.linspace(0, num_train_steps - 1, num).round()[::-1].copy()
    return grid.astype(np.int64)


def karras(
    num_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    append_zero: bool = True,
) -> np.ndarray:
    """Karras et al. 2022 (eq. 5) noise levels, descending from ``sigma_max`` to ``sigma_min``:

    ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``,
    i = 0..N-1 (N = 1 gives ``[sigma_max]``). With ``append_zero`` (the default, as k-diffusion's
    ``get_sigmas_karras`` and diffusers' Euler/Heun schedulers) a final 0 is appended: N + 1
    values. These are :func:`gen.diffusion.schedules.edm`'s sigmas at ``t = 1 - i / (N - 1)``.
    """
    num_steps = _check_steps(num_steps)
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(
            f"karras: need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}."
        )
    if not rho > 0:
        raise ValueError(f"karras: need rho > 0, got rho={rho}.")
    ramp = np.linspace(0.0, 1.0, num_steps)
    min_inv_rho = sigma_min ** (1.0 / rho)
    max_inv_rho = sigma_max ** (1.0 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    if append_zero:
        sigmas = np.concatenate([sigmas, [0.0]])
    return sigmas


def uniform_logsnr(
    schedule: Schedule,
    num_steps: int,
    t_min: float = 0.0,
    t_max: float = 1.0,
    num_bisections: int = 64,
) -> Array:
    """``num_steps + 1`` times decreasing from ``t_max`` to ``t_min``, uniform in log-SNR.

    ``lambda(t_k) = lambda(t_max) + k / N (lambda(t_min) - lambda(t_max))``, k = 0..N, as the
    DPM-Solver papers recommend. t is found by vectorized bisection (``lax.fori_loop``), so the
    schedule must be strictly decreasing on [t_min, t_max]; the two ends are exact. The result
    is float32 (float64 under x64) and the function can run under ``jit`` with a static
    ``num_steps``. The log-SNR at both ends must be finite: after zero-terminal-SNR rescaling,
    pass ``t_max < 1``.
    """
    num_steps = _check_steps(num_steps)
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"uniform_logsnr: need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}.")
    ends = schedule(jnp.asarray([t_max, t_min]))
    dtype = ends.dtype
    if not isinstance(ends, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(ends))):
        raise ValueError(
            f"uniform_logsnr: the log-SNR at t_max={t_max} and t_min={t_min} must be finite, "
            f"got {np.asarray(ends).tolist()}; with zero terminal SNR, pass t_max < 1."
        )
    frac = jnp.arange(num_steps + 1, dtype=dtype) / num_steps
    targets = ends[0] + frac * (ends[1] - ends[0])  # increasing log-SNR: decreasing t

    def body(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = schedule(mid) > targets  # lambda too large: t too small
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo = jnp.full_like(targets, t_min)
    hi = jnp.full_like(targets, t_max)
    lo, hi = jax.lax.fori_loop(0, num_bisections, body, (lo, hi))
    t = 0.5 * (lo + hi)
    return t.at[0].set(t_max).at[-1].set(t_min)
