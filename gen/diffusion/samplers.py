"""Diffusion samplers, each one ``lax.scan`` over a precomputed time grid.

A **denoiser** is a pure function ``denoiser(x_t, t) -> prediction`` on a batch: ``x_t`` has shape
``(B, ...)`` and ``t`` shape ``(B,)``, continuous time in [0, 1]; what it predicts is named by a
``parameterization`` (``"eps"``, ``"x0"``, ``"v"``, ``"score"`` or ``"velocity"``, see
:mod:`gen.diffusion.parameterization`; ``"velocity"`` is ``dx_t/dt`` of the VP path of the
schedule). Class conditioning and classifier-free guidance are wrappers, see
:class:`ClassConditional`, :func:`guided`.

**One API for every sampler**::

    sampler(denoiser, parameterization, schedule, x_T, ts, *, key=None, labels=None,
            clip_x0=None, **options) -> x

- ``schedule``: a log-SNR schedule (:mod:`gen.diffusion.schedules`); ``x_t = alpha x_0 + sigma
  eps`` with ``alpha^2 = sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)`` (VP).
- ``x_T``: the starting sample at time ``ts[0]``, in the VP scale of that time (``N(0, I)`` for
  pure noise). Computation is in float32 (float64 under ``jax.enable_x64`` for float64 inputs).
- ``ts``: a decreasing 1-D array of ``N + 1`` times, N >= 1 steps. Step i goes from ``ts[i]`` to
  ``ts[i + 1]``; the model is evaluated at ``ts[0..N-1]`` (Heun also at the interior ``ts[i+1]``,
  churned samplers at raised times). **The final time** ``ts[N] = 0`` **is the clean data
  itself** (``alpha = 1``, ``sigma = 0``, ``lambda = +inf``), whatever ``schedule(0)`` is:
  diffusers' ``set_alpha_to_one=True`` (DDIM) and ``final_sigmas_type="zero"`` (DPM-Solver,
  Euler, Heun), k-diffusion's and EDM's appended ``sigma = 0``. A final ``ts[N] > 0`` lands at
  ``lambda(ts[N])``: e.g. ``1 / T`` is diffusers' ``set_alpha_to_one=False`` (``alphas_cumprod[0]``)
  and ``final_sigmas_type="sigma_min"``. Only the last entry gets this meaning; an interior
  ``t = 0`` is ``schedule(0)`` (EDM/Karras grids evaluate the model at ``sigma_min``, which the
  EDM schedule puts at t = 0, then step to ``sigma = 0``: ``ts = [..., 0, 0]``). Interior times
  decrease strictly; the final one may equal the one before (a last step of length zero, which
  only re-composes x from the possibly clipped x0, as diffusers' DDIM with
  ``set_alpha_to_one=False`` on a grid that ends at timestep 0).
  Build grids with :func:`times_from_timesteps` (diffusers' integer timesteps),
  :func:`times_from_sigmas` (Karras sigmas on any schedule) or
  :func:`gen.diffusion.timesteps.uniform_logsnr`.
- ``key``: needed by stochastic samplers. Step i draws ``normal(split(key, N)[i], x.shape)``.
- ``labels``: class labels, required by (and only accepted by) a :class:`ClassConditional`
  denoiser.
- ``clip_x0``: clip the predicted x0 to ``[-clip_x0, clip_x0]`` (diffusers' ``clip_sample``).

Concrete grids are checked (a ValueError for times outside [0, 1], a grid that does not
decrease, integer timesteps, or fewer than one step); a traced grid is not, and the schedules
clip times outside [0, 1] into it.

**Compilation.** Each sampler is one ``lax.scan`` and jit-compiles as a whole: the number of steps
(the length of ``ts``), the parameterization, the denoiser, the schedule and the options are
static; ``x_T``, ``ts``, ``key`` and ``labels`` may be traced::

    >>> import jax
    >>> from functools import partial
    >>> from gen.diffusion import samplers, schedules, timesteps
    >>> sched = schedules.ddpm_linear()
    >>> ts = samplers.times_from_timesteps(timesteps.leading(1000, 50), 1000)
    >>> net = lambda x_t, t: 0.1 * x_t                # any (x_t, t) -> eps function
    >>> run = jax.jit(partial(samplers.ddim, net, "eps", sched))
    >>> run(jax.random.normal(jax.random.key(0), (16, 8)), ts).shape
    (16, 8)

**VP and VE.** Euler, Heun and Euler ancestral (Karras et al. 2022; k-diffusion) integrate in the
variance-exploding variable ``x_ve = x / alpha = x_0 + sigma_ve eps`` with ``sigma_ve =
sigma / alpha = exp(-lambda / 2)``; the denoiser still sees ``x = alpha x_ve`` at time t (what
diffusers' ``scale_model_input`` does). ``x_T`` comes in and the result goes out in the VP scale
(at ``ts[N] = 0`` the two coincide). They need a finite log-SNR at ``ts[0]``: after
zero-terminal-SNR rescaling, start below t = 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion import schedules as schedules_lib
from gen.diffusion.parameterization import (
    PARAMETERIZATIONS,
    Coefficients,
    check_parameterization,
    to_x0_eps,
)
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Denoiser = Callable[[Array, Array], Array]

__all__ = [
    "PARAMETERIZATIONS",
    "SAMPLERS",
    "ClassConditional",
    "Denoiser",
    "Sampler",
    "class_conditional",
    "ddim",
    "ddpm",
    "dpmpp_2m",
    "dpmpp_3m",
    "euler",
    "euler_ancestral",
    "get_sampler",
    "guided",
    "heun",
    "times_from_sigmas",
    "times_from_timesteps",
    "with_labels",
]

_BISECTIONS = 64  # halvings of [0, 1] when inverting a schedule: below float64 resolution


class Sampler(Protocol):
    """The common signature of the samplers in this module."""

    def __call__(
        self,
        denoiser: Denoiser | ClassConditional,
        parameterization: str,
        schedule: Schedule,
        x_T: ArrayLike,
        ts: ArrayLike,
        *,
        key: Array | None = None,
        labels: ArrayLike | None = None,
        clip_x0: float | None = None,
    ) -> Array: ...


# ----------------------------------------------------------------------------------------------
# Conditioning and guidance
# ----------------------------------------------------------------------------------------------


class ClassConditional(NamedTuple):
    """A denoiser that takes class labels: ``apply(x_t, t, labels) -> prediction``.

    The wrapper is the marker that tells samplers and :func:`guided` that the function takes
    labels. Sample from it by passing ``labels=`` to any sampler, or bind them with
    :func:`with_labels`.
    """

    apply: Callable[[Array, Array, Array], Array]


def class_conditional(fn: Callable[[Array, Array, Array], Array]) -> ClassConditional:
    """Marks ``fn(x_t, t, labels) -> prediction`` as a class-conditional denoiser."""
    if isinstance(fn, ClassConditional):
        return fn
    if not callable(fn):
        raise ValueError(f"class_conditional: expected a function (x_t, t, labels), got {fn!r}.")
    return ClassConditional(fn)


def with_labels(denoiser: ClassConditional, labels: ArrayLike) -> Denoiser:
    """The plain denoiser ``(x_t, t) -> denoiser.apply(x_t, t, labels)`` (labels passed through)."""
    if not isinstance(denoiser, ClassConditional):
        raise ValueError(
            "with_labels: the denoiser takes no labels; wrap a function (x_t, t, labels) with "
            "samplers.class_conditional first."
        )
    labels = jnp.asarray(labels)

    def bound(x_t: Array, t: Array) -> Array:
        if labels.ndim == 0 or labels.shape[0] != x_t.shape[0]:
            raise ValueError(
                f"labels must have the batch size {x_t.shape[0]} as leading axis, got shape "
                f"{labels.shape}."
            )
        return denoiser.apply(x_t, t, labels)

    return bound


def guided(
    denoiser: ClassConditional, scale: float | Array, null_label: ArrayLike
) -> ClassConditional:
    """Classifier-free guidance (Ho & Salimans 2022): ``pred_u + scale (pred_c - pred_u)``.

    ``pred_c = apply(x, t, labels)`` and ``pred_u = apply(x, t, null)`` with ``null`` the
    ``null_label`` broadcast to the labels' shape (e.g. the extra class index the model was
    trained with under label dropout). Both come from **one** call on the doubled batch of size
    2B. ``scale = 1`` is the conditional model, ``scale = 0`` the unconditional one (the
    convention of diffusers' ``guidance_scale``; Ho & Salimans' ``w`` is ``scale - 1``). Since
    every conversion between parameterizations is affine in the prediction at fixed ``(x_t, t)``
    and the weights sum to 1, guiding eps, x0, v, score or velocity is the same.

    Returns a :class:`ClassConditional`: sample it with ``labels=``. Raises a ``ValueError`` if
    the denoiser takes no labels.
    """
    if not isinstance(denoiser, ClassConditional):
        raise ValueError(
            "guided: classifier-free guidance needs a class-conditional denoiser (x_t, t, labels) "
            "wrapped with samplers.class_conditional; this denoiser takes no labels."
        )

    def apply(x_t: Array, t: Array, labels: Array) -> Array:
        labels = jnp.asarray(labels)
        null = jnp.broadcast_to(jnp.asarray(null_label, labels.dtype), labels.shape)
        pred = denoiser.apply(
            jnp.concatenate([x_t, x_t]),
            jnp.concatenate([t, t]),
            jnp.concatenate([labels, null]),
        )
        pred_c, pred_u = jnp.split(pred, 2)
        return pred_u + scale * (pred_c - pred_u)

    return ClassConditional(apply)


def _bind(denoiser: Denoiser | ClassConditional, labels: ArrayLike | None) -> Denoiser:
    if isinstance(denoiser, ClassConditional):
        if labels is None:
            raise ValueError(
                "this denoiser is class-conditional (or guided): pass labels=... (an array with "
                "the batch size as leading axis)."
            )
        return with_labels(denoiser, labels)
    if labels is not None:
        raise ValueError(
            "labels were given, but the denoiser takes none; wrap a function (x_t, t, labels) "
            "with samplers.class_conditional."
        )
    if not callable(denoiser):
        raise ValueError(f"expected a denoiser function (x_t, t), got {denoiser!r}.")
    return denoiser


# ----------------------------------------------------------------------------------------------
# Time grids
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------


def _log_alpha_sigma(lam: Array) -> tuple[Array, Array]:
    """``(log alpha, log sigma)`` of the VP path, exact at lambda = +-inf."""
    return 0.5 * jax.nn.log_sigmoid(lam), 0.5 * jax.nn.log_sigmoid(-lam)


def _state(x_T: ArrayLike) -> Array:
    x = jnp.asarray(x_T)
    if x.ndim < 1:
        raise ValueError(f"x_T must have a leading batch axis, got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x_T must be a float array, got dtype {x.dtype}.")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _is_zero(value: Any) -> bool:
    """True only for a concrete zero (a traced value might be anything)."""
    try:
        return float(value) == 0.0
    except (TypeError, jax.errors.ConcretizationTypeError):
        return False


def _step_keys(key: Array | None, num_steps: int, needed: bool, name: str) -> Array | None:
    if not needed:
        return None
    if key is None:
        raise ValueError(f"{name} draws noise: pass key=jax.random.key(...) (or a PRNGKey).")
    return jax.random.split(key, num_steps)


def _noise(key: Array | None, x: Array) -> Array:
    return jax.random.normal(key, x.shape, x.dtype)


def _clip(x0: Array, clip_x0: float | None) -> Array:
    return x0 if clip_x0 is None else jnp.clip(x0, -clip_x0, clip_x0)


def _predictor(
    fn: Denoiser, parameterization: str, schedule: Schedule, clip_x0: float | None
) -> Callable[[Array, Array, Array], tuple[Array, Array]]:
    """``predict(x, t, lam) -> (x0, eps)`` at one grid time (a scalar t with log-SNR lam).

    x0 is clipped when asked; eps is the model's, unclipped (diffusers' default)."""
    check_parameterization(parameterization)

    def predict(x: Array, t: Array, lam: Array) -> tuple[Array, Array]:
        t_batch = jnp.broadcast_to(t, (x.shape[0],))
        pred = jnp.asarray(fn(x, t_batch))
        if pred.shape != x.shape:
            raise ValueError(
                f"the denoiser returned shape {pred.shape} for an input of shape {x.shape}."
            )
        pred = pred.astype(x.dtype)
        alpha, sigma = schedules_lib.alpha_sigma_from_logsnr(lam)
        if parameterization == "velocity":
            _, _, d_alpha, d_sigma = schedules_lib.alpha_sigma_and_derivatives(schedule, t)
        else:
            d_alpha = d_sigma = jnp.zeros_like(alpha)
        c = Coefficients(*(jnp.asarray(v, x.dtype) for v in (alpha, sigma, d_alpha, d_sigma)))
        x0, eps = to_x0_eps(pred, x, c, parameterization)
        return _clip(x0, clip_x0), eps

    return predict


class _Setup(NamedTuple):
    predict: Callable[[Array, Array, Array], tuple[Array, Array]]
    x: Array
    ts: Array
    lam: Array
    num_steps: int


def _setup(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    labels: ArrayLike | None,
    clip_x0: float | None,
) -> _Setup:
    check_parameterization(parameterization)
    if clip_x0 is not None and not clip_x0 > 0:
        raise ValueError(f"clip_x0 must be None or > 0, got {clip_x0}.")
    fn = _bind(denoiser, labels)
    x = _state(x_T)
    ts, num_steps = _check_grid(ts)
    lam = _grid_logsnr(schedule, ts)
    return _Setup(_predictor(fn, parameterization, schedule, clip_x0), x, ts, lam, num_steps)


# ----------------------------------------------------------------------------------------------
# DDPM and DDIM (VP)
# ----------------------------------------------------------------------------------------------


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
    variance: str = "small",
) -> Array:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) on any decreasing grid.

    From t to the next time s, with ``alpha_{t|s} = alpha_t / alpha_s`` and ``beta = 1 -
    alpha_t^2 / alpha_s^2`` (``1 - alpha_bar_t / alpha_bar_s``, the beta of a discrete schedule
    at integer timesteps):

    ``x_s = alpha_s beta / sigma_t^2 x0 + alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + std z``,

    ``std^2 = beta sigma_s^2 / sigma_t^2`` (``variance="small"``, the posterior's beta-tilde) or
    ``beta`` (``"large"``). x0 comes from the model (clipped with ``clip_x0``). No noise is added
    on a step that lands on the clean data (``ts[-1] = 0``), as Algorithm 2's ``z = 0`` at t = 1
    and diffusers' DDPMScheduler for grids ending at timestep 0 (diffusers also adds noise on a
    last step from a timestep > 0, e.g. with ``steps_offset=1``; we do not). Needs ``key``.
    """
    if variance not in ("small", "large"):
        raise ValueError(f"ddpm: variance must be 'small' or 'large', got {variance!r}.")
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0)
    keys = _step_keys(key, s.num_steps, True, "ddpm")

    def step(x: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        t, lam_t, lam_s, k = inp
        x0, _ = s.predict(x, t, lam_t)
        la_t, ls_t = _log_alpha_sigma(lam_t)
        la_s, ls_s = _log_alpha_sigma(lam_s)
        beta = -jnp.expm1(2.0 * (la_t - la_s))
        ratio = jnp.exp(2.0 * (ls_s - ls_t))  # sigma_s^2 / sigma_t^2
        c_x0 = jnp.exp(la_s - 2.0 * ls_t) * beta
        c_xt = jnp.exp(la_t - la_s) * ratio
        var = beta * ratio if variance == "small" else beta
        std = jnp.where(jnp.isinf(lam_s), 0.0, jnp.sqrt(var))
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
    eta: float = 0.0,
) -> Array:
    """DDIM (Song et al. 2021, eq. 12): from t to the next time s,

    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - std^2) eps + std z``,
    ``std = eta sqrt((sigma_s^2 / sigma_t^2) (1 - alpha_t^2 / alpha_s^2))``.

    eta = 0 is deterministic, eta = 1 is DDPM with the small variance. With ``clip_x0`` the x0 is
    clipped but eps stays the model's, as diffusers' DDIMScheduler (``use_clipped_model_output=
    False``). **Final step**: the "previous alpha_bar" of the last step is that of ``ts[-1]``;
    ``ts[-1] = 0`` gives ``alpha_bar = 1`` (diffusers' ``set_alpha_to_one=True``), ``ts[-1] =
    1/T`` gives ``alphas_cumprod[0]`` (``False``), see :func:`times_from_timesteps`.
    diffusers steps from timestep k to ``k - T // N``, which is the next grid entry for its
    "leading" spacing; for others pass the grid you want. Needs ``key`` unless eta = 0.
    """
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0)
    stochastic = not _is_zero(eta)
    keys = _step_keys(key, s.num_steps, stochastic, "ddim with eta != 0")

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

    xs = (s.ts[:-1], s.lam[:-1], s.lam[1:], keys)
    x, _ = jax.lax.scan(step, s.x, xs)
    return x


# ----------------------------------------------------------------------------------------------
# DPM-Solver++ (multistep, data prediction)
# ----------------------------------------------------------------------------------------------


def _dpm_orders(num_steps: int, order: int, lower_order_final: bool) -> np.ndarray:
    """diffusers' order per step: warm-up ``min(order, i + 1)``; with ``lower_order_final`` and
    fewer than 15 steps, also ``<= N - i`` (first order last, at most second order before)."""
    orders = []
    for i in range(num_steps):
        o = min(order, i + 1)
        if lower_order_final and num_steps < 15:
            o = min(o, num_steps - i)
        orders.append(o)
    return np.asarray(orders, np.int32)


def _dpm_solver_pp(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    order: int,
    key: Array | None,
    labels: ArrayLike | None,
    clip_x0: float | None,
    lower_order_final: bool,
) -> Array:
    del key  # deterministic; accepted for the uniform API
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0)
    orders = jnp.asarray(_dpm_orders(s.num_steps, order, lower_order_final))

    def step(carry: tuple[Any, ...], inp: tuple[Array, ...]) -> tuple[tuple[Any, ...], None]:
        x, ms, ls = carry  # the previous x0 predictions and half log-SNRs, newest first
        t, lam_s, lam_t, o = inp
        m0, _ = s.predict(x, t, lam_s)
        l0, l_t = 0.5 * lam_s, 0.5 * lam_t  # the paper's lambda = log(alpha / sigma)
        la_t, ls_t = _log_alpha_sigma(lam_t)
        _, ls_s = _log_alpha_sigma(lam_s)
        h = l_t - l0
        # A step to sigma = 0 (h = inf) or of length zero (h = 0) is first order.
        o = jnp.where(jnp.isinf(lam_t) | (h == 0), 1, o)
        h_safe = jnp.where(jnp.isfinite(h) & (h != 0), h, jnp.ones_like(h))
        phi1 = -jnp.expm1(-h)  # 1 - e^{-h}
        zero = jnp.zeros_like(phi1)
        r0 = jnp.where(o >= 2, (l0 - ls[0]) / h_safe, 1.0)
        # Order 1 (DDIM): D = m0. Order 2 (2M, midpoint): D = m0 + (m0 - m1) / (2 r0).
        w1 = (phi1, zero)
        w2 = (phi1 * (1.0 + 0.5 / r0), -phi1 * 0.5 / r0)
        if order == 2:
            w = [jnp.where(o == 1, u, v) for u, v in zip(w1, w2, strict=True)]
        else:
            # Order 3 (3M): D1_0 = (m0 - m1)/r0, D1_1 = (m1 - m2)/r1, D1 = D1_0 + r0/(r0+r1)
            # (D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r0+r1); phi1 m0 + phi2 D1 - phi3 D2.
            r1 = jnp.where(o >= 3, (ls[0] - ls[1]) / h_safe, 1.0)
            phi2 = jnp.expm1(-h_safe) / h_safe + 1.0
            phi3 = (jnp.expm1(-h_safe) + h_safe) / (h_safe * h_safe) - 0.5
            a, b = 1.0 / r0, 1.0 / r1
            c, e = r0 / (r0 + r1), 1.0 / (r0 + r1)
            w3 = (
                phi1 + phi2 * a * (1.0 + c) - phi3 * e * a,
                -phi2 * (a + c * (a + b)) + phi3 * e * (a + b),
                phi2 * c * b - phi3 * e * b,
            )
            w = [
                jnp.where(o == 1, u, jnp.where(o == 2, v, z))
                for u, v, z in zip((*w1, zero), (*w2, zero), w3, strict=True)
            ]
        alpha_t = jnp.exp(la_t)
        x_new = jnp.exp(ls_t - ls_s) * x
        for wk, mk in zip(w, (m0, *ms), strict=True):
            x_new = x_new + (alpha_t * wk).astype(x.dtype) * mk
        return (x_new.astype(x.dtype), (m0, *ms[:-1]), (l0, *ls[:-1])), None

    history = order - 1
    carry = (s.x, (jnp.zeros_like(s.x),) * history, (jnp.zeros((), s.lam.dtype),) * history)
    xs = (s.ts[:-1], s.lam[:-1], s.lam[1:], orders)
    (x, _, _), _ = jax.lax.scan(step, carry, xs, unroll=_history_unroll(s.x))
    return x


def _history_unroll(x: Array) -> int:
    """``lax.scan`` unroll for a multistep solver's loop over a state like ``x``.

    The carry holds ``x`` and the previous x0 predictions; in a while loop XLA cannot update
    both in place, so it copies them every step. Unrolling 8 steps lets it reuse buffers across
    steps: on 2 CPU cores, DPM-Solver++(2M) at (64, 32, 32, 3) went from 81 to 34 us/step (4
    steps: 37). For small states the loop's own overhead rules and unrolling costs (1.7 -> 4.8
    us/step at (4, 8, 8, 3)), so it is used from 2^16 elements on.
    """
    return 8 if x.size >= 2**16 else 1


def dpmpp_2m(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    key: Array | None = None,
    labels: ArrayLike | None = None,
    clip_x0: float | None = None,
    lower_order_final: bool = True,
) -> Array:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep, data prediction.

    In the paper's ``lambda = log(alpha / sigma)`` (half our log-SNR), ``h = lambda_s -
    lambda_t`` (s the next time), ``r = h_prev / h``:

    ``x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^{-h}) D``,
    ``D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev``,

    with a first-order (DDIM) first step. As diffusers' DPMSolverMultistepScheduler
    (``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``): a step to the clean data
    (``ts[-1] = 0``, h = inf) is first order and returns the x0 prediction, and with
    ``lower_order_final`` and fewer than 15 steps the last step is first order. Deterministic.
    """
    return _dpm_solver_pp(
        denoiser,
        parameterization,
        schedule,
        x_T,
        ts,
        order=2,
        key=key,
        labels=labels,
        clip_x0=clip_x0,
        lower_order_final=lower_order_final,
    )


def dpmpp_3m(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    *,
    key: Array | None = None,
    labels: ArrayLike | None = None,
    clip_x0: float | None = None,
    lower_order_final: bool = True,
) -> Array:
    """DPM-Solver++(3M): third-order multistep with data prediction (diffusers' ``solver_order=3``).

    With ``r0 = h_0 / h``, ``r1 = h_1 / h`` (the two previous steps), ``D1_0 = (m0 - m1) / r0``,
    ``D1_1 = (m1 - m2) / r1``, ``D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1)``, ``D2 = (D1_0 -
    D1_1) / (r0 + r1)``:

    ``x_s = (sigma_s / sigma_t) x_t + alpha_s (phi_1 m0 + phi_2 D1 - phi_3 D2)``,
    ``phi_1 = 1 - e^{-h}``, ``phi_2 = (e^{-h} - 1) / h + 1``,
    ``phi_3 = (e^{-h} - 1 + h) / h^2 - 1/2``.

    Warm-up: first order, then second order (2M); final steps as :func:`dpmpp_2m` (with
    ``lower_order_final`` and fewer than 15 steps: at most second order on the second to last
    step, first order on the last). Deterministic.
    """
    return _dpm_solver_pp(
        denoiser,
        parameterization,
        schedule,
        x_T,
        ts,
        order=3,
        key=key,
        labels=labels,
        clip_x0=clip_x0,
        lower_order_final=lower_order_final,
    )


# ----------------------------------------------------------------------------------------------
# Karras et al. 2022 / k-diffusion samplers (VE)
# ----------------------------------------------------------------------------------------------


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
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> Array:
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0)
    t_hat, lam_hat, churned = _churn(schedule, s.ts, s.lam, s.num_steps, s_churn, s_tmin, s_tmax)
    name = "heun" if second_order else "euler"
    keys = _step_keys(key, s.num_steps, churned, f"{name} with s_churn > 0")

    def denoise_ve(x_ve: Array, t: Array, lam: Array) -> Array:
        alpha = jnp.exp(_log_alpha_sigma(lam)[0]).astype(x_ve.dtype)
        return s.predict(alpha * x_ve, t, lam)[0]

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

    alpha_0 = jnp.exp(_log_alpha_sigma(s.lam[0])[0]).astype(s.x.dtype)
    xs = (s.lam[:-1], t_hat, lam_hat, s.ts[1:], s.lam[1:], keys)
    x_ve, _ = jax.lax.scan(step, s.x / alpha_0, xs)
    alpha_final = jnp.exp(_log_alpha_sigma(s.lam[-1])[0]).astype(x_ve.dtype)
    return alpha_final * x_ve


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
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Array:
    """Euler ancestral (k-diffusion's ``sample_euler_ancestral``) in the VE variable.

    ``sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2))``,
    ``sigma_down = sqrt(sigma_next^2 - sigma_up^2)``; ``x <- x + (sigma_down - sigma) d +
    S_noise sigma_up z`` with ``d = (x - x0) / sigma``. No noise on a step to ``sigma = 0``.
    eta = 1 is diffusers' EulerAncestralDiscreteScheduler. Needs ``key`` unless eta = 0.
    """
    s = _setup(denoiser, parameterization, schedule, x_T, ts, labels, clip_x0)
    stochastic = not _is_zero(eta)
    keys = _step_keys(key, s.num_steps, stochastic, "euler_ancestral with eta != 0")

    def step(x_ve: Array, inp: tuple[Array, ...]) -> tuple[Array, None]:
        t, lam, lam_next, k = inp
        sigma, sigma_next = jnp.exp(-0.5 * lam), jnp.exp(-0.5 * lam_next)
        alpha = jnp.exp(_log_alpha_sigma(lam)[0]).astype(x_ve.dtype)
        x0, _ = s.predict(alpha * x_ve, t, lam)
        d = (x_ve - x0) / sigma
        if not stochastic:
            return (x_ve + (sigma_next - sigma) * d).astype(x_ve.dtype), None
        var_up = sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
        sigma_up = jnp.minimum(sigma_next, eta * jnp.sqrt(jnp.maximum(var_up, 0.0)))
        sigma_down = jnp.sqrt(jnp.maximum(sigma_next**2 - sigma_up**2, 0.0))
        x_new = x_ve + (sigma_down - sigma) * d + s_noise * sigma_up * _noise(k, x_ve)
        return x_new.astype(x_ve.dtype), None

    alpha_0 = jnp.exp(_log_alpha_sigma(s.lam[0])[0]).astype(s.x.dtype)
    x_ve, _ = jax.lax.scan(step, s.x / alpha_0, (s.ts[:-1], s.lam[:-1], s.lam[1:], keys))
    alpha_final = jnp.exp(_log_alpha_sigma(s.lam[-1])[0]).astype(x_ve.dtype)
    return alpha_final * x_ve


# ----------------------------------------------------------------------------------------------
# Lookup
# ----------------------------------------------------------------------------------------------

SAMPLERS: dict[str, Sampler] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_3m": dpmpp_3m,
    "euler": euler,
    "heun": heun,
    "euler_ancestral": euler_ancestral,
}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`), or a ValueError listing them."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}."
        ) from None
