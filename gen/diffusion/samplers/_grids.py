"""Time grids: diffusers' integer timesteps and noise levels as continuous times, grid checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion import schedules as schedules_lib
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

_BISECTIONS = 64  # halvings of [0, 1] when inverting a schedule: below float64 resolution


def times_from_timesteps(
    timesteps: ArrayLike, num_train_steps: int, *, set_alpha_to_one: bool = True
) -> np.ndarray:
    """The ``N + 1`` times of diffusers' ``N`` integer ``timesteps`` (descending), float64 numpy.

    Timestep i is ``t = (i + 1) / T`` (:func:`gen.diffusion.schedules.timestep_to_t`), and a final
    time is appended: 0, the clean data, with ``set_alpha_to_one=True``, else ``1 / T``
    (timestep 0, ``alphas_cumprod[0]``), as diffusers' DDIM option of the same name.
    """
    num_train_steps = schedules_lib._check_steps(num_train_steps, "num_train_steps")
    steps = np.asarray(timesteps)
    if steps.ndim != 1 or steps.size < 1:
        raise ValueError(
            f"times_from_timesteps: need a 1-D array of at least one timestep, got {steps.shape}."
        )
    if np.any(steps < 0) or np.any(steps >= num_train_steps):
        raise ValueError(
            f"times_from_timesteps: timesteps must lie in 0..{num_train_steps - 1}, got "
            f"{steps.min()}..{steps.max()}."
        )
    t = (steps.astype(np.float64) + 1.0) / num_train_steps
    final = 0.0 if set_alpha_to_one else 1.0 / num_train_steps
    return np.concatenate([t, [final]])


def times_from_sigmas(schedule: Schedule, sigmas: ArrayLike) -> Array:
    """The times at which ``schedule`` has the EDM noise levels ``sigmas`` (``exp(-lambda/2)``).

    Inverts the (decreasing) log-SNR by bisection in [0, 1], vectorized; ``sigma = 0`` maps to
    t = 0, which as the last grid entry is the clean data. Levels beyond the schedule's range
    map to the nearest end. Use it for Karras grids on any schedule, e.g.
    ``times_from_sigmas(sched, timesteps.karras(18, sigma_min, sigma_max))``.
    """
    sigmas = schedules_lib._float(sigmas)
    positive = sigmas > 0
    lam = -2.0 * jnp.log(jnp.where(positive, sigmas, jnp.ones_like(sigmas)))
    t = _invert_logsnr(schedule, lam, jnp.zeros_like(lam))
    return jnp.where(positive, t, jnp.zeros_like(t))


def _invert_logsnr(schedule: Schedule, lam: Array, lo: Array) -> Array:
    """The t in ``[lo, 1]`` with ``schedule(t) = lam``, by bisection (``lax.while_loop``).

    Targets above ``schedule(lo)`` give ``lo`` and targets below ``schedule(1)`` give 1, exactly.
    No gradient flows through the search.
    """
    lam = jax.lax.stop_gradient(lam)
    lo = jax.lax.stop_gradient(jnp.asarray(lo, lam.dtype))
    hi = jnp.ones_like(lam)

    def body(state: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        i, a, b = state
        mid = 0.5 * (a + b)
        above = schedule(mid) > lam  # lambda too large: t too small
        return i + 1, jnp.where(above, mid, a), jnp.where(above, b, mid)

    _, a, b = jax.lax.while_loop(lambda s: s[0] < _BISECTIONS, body, (jnp.array(0), lo, hi))
    t = 0.5 * (a + b)
    t = jnp.where(lam >= schedule(lo), lo, t)
    return jnp.where(lam <= schedule(hi), hi, t)


def _check_grid(ts: ArrayLike) -> tuple[Array, int]:
    """``ts`` as a float array of shape (N + 1,), N >= 1; values checked when concrete."""
    if isinstance(ts, (list, tuple)):
        ts = np.asarray(ts, np.float64)
    if not hasattr(ts, "dtype"):
        raise ValueError(f"ts must be a 1-D array of times, got {ts!r}.")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        raise ValueError(
            f"ts must hold continuous times in [0, 1] (a float array), got dtype {ts.dtype}; turn "
            "integer timesteps into times with samplers.times_from_timesteps."
        )
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(
            "ts must be a 1-D array of N + 1 decreasing times for N >= 1 steps (the start, ..., "
            f"the final time), got shape {tuple(ts.shape)}: fewer than one step."
        )
    if not isinstance(ts, jax.core.Tracer):
        v = np.asarray(ts, np.float64)
        ok = np.all((v >= 0) & (v <= 1)) and np.all(np.diff(v[:-1]) < 0) and v[-1] <= v[-2]
        if not ok:
            raise ValueError(
                "ts must lie in [0, 1] and decrease strictly (only the final entry may equal the "
                f"one before it), got {v.tolist()}."
            )
    return schedules_lib._float(ts), ts.shape[0] - 1


def _grid_logsnr(schedule: Schedule, ts: Array) -> Array:
    """``lambda(ts)`` with the final entry +inf (the clean data) where ``ts[-1] == 0``."""
    lam = schedule(ts)
    last = jnp.where(ts[-1] <= 0, jnp.asarray(jnp.inf, lam.dtype), lam[-1])
    return lam.at[-1].set(last)

