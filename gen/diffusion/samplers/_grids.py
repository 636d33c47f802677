"""Time grids: diffusers' integer timesteps and noise levels as continuous times, grid checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion import timesteps as timesteps_lib
from gen.diffusion.schedules import Schedule
from gen.diffusion.schedules._common import _check_steps, _float

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
    num_train_steps = _check_steps(num_train_steps, "num_train_steps")
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


def diffusers_ddim_targets(
    timesteps: ArrayLike, num_train_steps: int, *, set_alpha_to_one: bool = True
) -> np.ndarray:
    """The N times diffusers' DDIMScheduler steps *to* from its N ``timesteps`` (float64 numpy).

    diffusers steps from timestep k to ``k - T // N`` (a fixed stride), not to the next
    timestep of its grid: the time ``(k - T // N + 1) / T``, or, where ``k - T // N < 0``, the
    final time (0 with ``set_alpha_to_one``, else ``1 / T``, as :func:`times_from_timesteps`).
    For "leading" spacing this is the next grid entry; for "trailing" and "linspace" with N not
    dividing T it is not, and the next step's model call sees a sample at a noise level other
    than the one of its timestep. Pass the result as ``targets=`` to :func:`ddim` to reproduce
    diffusers; the default (``targets = ts[1:]``, each step lands where the next one starts) is
    the consistent discretization.
    """
    num_train_steps = _check_steps(num_train_steps, "num_train_steps")
    ts = times_from_timesteps(timesteps, num_train_steps, set_alpha_to_one=set_alpha_to_one)
    steps = np.asarray(timesteps).astype(np.int64)
    prev = steps - num_train_steps // steps.size
    return np.where(prev >= 0, (prev + 1.0) / num_train_steps, ts[-1])


def _target_logsnr(schedule: Schedule, ts: Array, targets: ArrayLike) -> Array:
    """``lambda(targets)`` (+inf, the clean data, at a target of 0), checked against ``ts``."""
    if isinstance(targets, (list, tuple)):
        targets = np.asarray(targets, np.float64)
    num_steps = ts.shape[0] - 1
    if not hasattr(targets, "dtype") or targets.shape != (num_steps,):
        raise ValueError(
            f"targets must be an array of the N = {num_steps} times the steps land on, got "
            f"{getattr(targets, 'shape', targets)!r}."
        )
    if not jnp.issubdtype(targets.dtype, jnp.floating):
        raise ValueError(f"targets must be float times in [0, 1], got dtype {targets.dtype}.")
    if not isinstance(targets, jax.core.Tracer) and not isinstance(ts, jax.core.Tracer):
        v, start = np.asarray(targets, np.float64), np.asarray(ts[:-1], np.float64)
        if not (np.all((v >= 0) & (v <= 1)) and np.all(v <= start + 1e-6)):
            raise ValueError(
                "targets must lie in [0, 1], each at or below the time its step starts from "
                f"(ts[i]), got {v.tolist()} for ts[:-1] = {start.tolist()}."
            )
    targets = _float(targets).astype(ts.dtype)
    lam = schedule(targets)
    return jnp.where(targets <= 0, jnp.asarray(jnp.inf, lam.dtype), lam)


def times_from_sigmas(schedule: Schedule, sigmas: ArrayLike) -> Array:
    """The times at which ``schedule`` has the EDM noise levels ``sigmas`` (``exp(-lambda/2)``).

    Inverts the (decreasing) log-SNR by bisection in [0, 1], vectorized; ``sigma = 0`` maps to
    t = 0, which as the last grid entry is the clean data. Levels beyond the schedule's range
    map to the nearest end. Use it for Karras grids on any schedule, e.g.
    ``times_from_sigmas(sched, timesteps.karras(18, sigma_min, sigma_max))``.
    """
    sigmas = _float(sigmas)
    positive = sigmas > 0
    lam = -2.0 * jnp.log(jnp.where(positive, sigmas, jnp.ones_like(sigmas)))
    t = _invert_logsnr(schedule, lam, jnp.zeros_like(lam))
    return jnp.where(positive, t, jnp.zeros_like(t))


def karras_times(
    schedule: Schedule,
    num_steps: int,
    *,
    num_train_steps: int | None = None,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    final: str = "zero",
) -> np.ndarray:
    """The ``N + 1`` times of a Karras grid on ``schedule``: diffusers' ``use_karras_sigmas=True``.

    ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``,
    i = 0..N-1 (:func:`gen.diffusion.timesteps.karras`), each turned into the time at which the
    schedule's EDM noise level ``exp(-lambda / 2)`` equals it (bisection, float64). The range
    defaults to the schedule's own: ``sigma_max = sigma(1)`` and ``sigma_min = sigma(1 / T)``
    (diffusers' range from ``alphas_cumprod``, timesteps T - 1 and 0) with ``num_train_steps=T``,
    else ``sigma(0)``. For a discrete schedule (:func:`gen.diffusion.schedules.from_betas`)
    lambda is linear between integer timesteps, so the time is diffusers' fractional timestep
    from log-sigma interpolation: ``t = (timestep + 1) / T``.

    ``final``: ``"zero"`` appends t = 0, the clean data (diffusers' ``final_sigmas_type="zero"``);
    ``"sigma_min"`` appends ``1 / T`` (``alphas_cumprod[0]``), or without ``num_train_steps`` the
    last Karras time (a last step of length zero). Returns float64 numpy, for any sampler::

        ts = samplers.karras_times(sched, 20, num_train_steps=1000)
        x = samplers.dpmpp_2m(net, "eps", sched, x_T, ts)
    """
    num_steps = _check_steps(num_steps)
    if final not in ("zero", "sigma_min"):
        raise ValueError(f"karras_times: final must be 'zero' or 'sigma_min', got {final!r}.")
    t_lo = 0.0
    if num_train_steps is not None:
        t_lo = 1.0 / _check_steps(num_train_steps, "num_train_steps")
    with jax.enable_x64(True):
        lam_ends = np.asarray(schedule(jnp.asarray([1.0, t_lo], jnp.float64)), np.float64)
        with np.errstate(over="ignore"):
            sig_ends = np.exp(-0.5 * lam_ends)
        if sigma_max is None:
            if not np.isfinite(sig_ends[0]):
                raise ValueError(
                    "karras_times: the schedule's sigma at t = 1 is infinite (zero terminal SNR); "
                    "pass sigma_max=..."
                )
            sigma_max = float(sig_ends[0])
        if sigma_min is None:
            if not sig_ends[1] > 0:
                raise ValueError(
                    f"karras_times: the schedule's sigma at t = {t_lo} is 0; pass sigma_min=... or "
                    "num_train_steps=T."
                )
            sigma_min = float(sig_ends[1])
        sigmas = timesteps_lib.karras(num_steps, sigma_min, sigma_max, rho, append_zero=False)
        ts = np.asarray(times_from_sigmas(schedule, jnp.asarray(sigmas, jnp.float64)), np.float64)
    if final == "zero":
        last = 0.0
    elif num_train_steps is not None:
        last = t_lo
    else:
        last = ts[-1]
    if last > ts[-1] or (final == "sigma_min" and last <= 0):
        raise ValueError(
            f"karras_times: final={final!r} puts the final time {last} above or at the clean data "
            f"for a grid ending at t = {ts[-1]}; pass num_train_steps=T or final='zero'."
        )
    return np.concatenate([ts, [last]])


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
    return _float(ts), ts.shape[0] - 1


def _grid_logsnr(schedule: Schedule, ts: Array) -> Array:
    """``lambda(ts)`` with the final entry +inf (the clean data) where ``ts[-1] == 0``."""
    lam = schedule(ts)
    last = jnp.where(ts[-1] <= 0, jnp.asarray(jnp.inf, lam.dtype), lam[-1])
    return lam.at[-1].set(last)

