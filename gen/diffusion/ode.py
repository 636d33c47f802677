"""ODE solvers and likelihoods through the probability-flow ODE, each one XLA loop.

A vector field is ``f(t, x) -> dx/dt`` with a scalar time ``t`` and a state ``x`` that is any
pytree of floating arrays (the solvers never flatten it). Time may run either way: every solver
here integrates from ``t0`` to ``t1`` with ``t1 < t0`` allowed.

- :func:`euler`, :func:`heun`: fixed steps over a time grid, one ``lax.scan`` each.
- :func:`dopri5`: Dormand–Prince 5(4) with FSAL, Hairer's step-size controller and initial-step
  heuristic, in one ``lax.while_loop`` capped at ``max_steps`` attempted steps.
- :func:`solve`: the three behind one name.
- :func:`probability_flow`: the ODE drift of any Gaussian path ``x_t = alpha_t x0 + sigma_t eps``
  from a denoiser in any parameterization. For every such path the probability-flow drift is
  ``u(x, t) = E[alpha' x0 + sigma' eps | x_t = x] = alpha' x0_hat + sigma' eps_hat``, so one ODE
  serves the diffusion PF-ODE and flow matching alike.
- :func:`log_likelihood`: ``log p_{t0}(x)`` by the instantaneous change of variables.

Each solver call is compiled as one XLA program (the solvers ``jax.jit`` themselves; inside an
outer ``jit`` that is a no-op). A vector field is a fresh closure at every call, so an eager
call compiles anew each time: put repeated calls inside your own ``jax.jit``.
Reverse-mode gradients do not pass through ``lax.while_loop``: differentiate through the
fixed-step solvers (``lax.scan``) instead; forward mode (``jax.jvp``) works through all of them.

Example::

    >>> import jax.numpy as jnp
    >>> from gen.diffusion import ode
    >>> sol = ode.dopri5(lambda t, x: -x, jnp.ones(3), 0.0, 1.0, rtol=1e-6, atol=1e-6)
    >>> bool(sol.success), float(sol.y[0])           # exp(-1)
    (True, 0.36787...)
    >>> ode.heun(lambda t, x: -x, jnp.ones(3), jnp.linspace(0.0, 1.0, 11)).shape
    (3,)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gen.diffusion.parameterization import Coefficients, check_parameterization, convert
from gen.diffusion.schedules import _check_steps

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any
VectorField = Callable[[Array, PyTree], PyTree]  # f(t, x) -> dx/dt, t a scalar

METHODS = ("euler", "heun", "dopri5")
TRACE_METHODS = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")

__all__ = [
    "METHODS",
    "LogLikelihood",
    "ODESolution",
    "dopri5",
    "euler",
    "heun",
    "log_likelihood",
    "probability_flow",
    "solve",
    "standard_normal_log_prob",
]


# ----------------------------------------------------------------------------------------------
# Pytree arithmetic
# ----------------------------------------------------------------------------------------------


def _combine(y: PyTree, h: Array, coefs: Sequence[float], ks: Sequence[PyTree]) -> PyTree:
    """``y + h * sum_j coefs[j] ks[j]`` leafwise, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coefs, ks, strict=True) if c != 0.0]

    def leaf(y_leaf: Array, *k_leaves: Array) -> Array:
        acc = sum(c * k for (c, _), k in zip(terms, k_leaves, strict=True))
        return y_leaf + (h * acc).astype(y_leaf.dtype)

    return jax.tree.map(leaf, y, *(k for _, k in terms))


def _rms(tree: PyTree) -> Array:
    """Root mean square over every element of every leaf (Hairer's norm)."""
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)
    size = sum(leaf.size for leaf in leaves)
    return jnp.sqrt(total / max(size, 1))


def _time_dtype(x: PyTree) -> jnp.dtype:
    """The dtype for time: the widest floating dtype among the leaves (float32 if none)."""
    dtypes = [leaf.dtype for leaf in jax.tree.leaves(x) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.result_type(*dtypes) if dtypes else jnp.dtype(jnp.float32)


def _as_state(x0: PyTree) -> PyTree:
    x0 = jax.tree.map(jnp.asarray, x0)
    for leaf in jax.tree.leaves(x0):
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise ValueError(f"ODE state leaves must be floating arrays, got dtype {leaf.dtype}.")
    return x0


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}.")
    return method


# ----------------------------------------------------------------------------------------------
# Fixed-step solvers
# ----------------------------------------------------------------------------------------------


def _check_grid(ts: ArrayLike, dtype: jnp.dtype) -> Array:
    ts = jnp.asarray(ts, dtype)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"a time grid must be 1-D with at least 2 times, got shape {ts.shape}.")
    return ts


def _fixed_step(
    step: Callable[[Array, Array, PyTree], PyTree], x0: PyTree, ts: ArrayLike, trajectory: bool
) -> PyTree:
    x0 = _as_state(x0)
    ts = _check_grid(ts, _time_dtype(x0))

    def body(x: PyTree, times: tuple[Array, Array]) -> tuple[PyTree, PyTree | None]:
        x_next = step(times[0], times[1], x)
        return x_next, (x_next if trajectory else None)

    def run(x0: PyTree, ts: Array) -> PyTree:
        x1, path = jax.lax.scan(body, x0, (ts[:-1], ts[1:]))
        if not trajectory:
            return x1
        return jax.tree.map(lambda a, p: jnp.concatenate([a[None], p]), x0, path)

    return jax.jit(run)(x0, ts)


def euler(f: VectorField, x0: PyTree, ts: ArrayLike, *, trajectory: bool = False) -> PyTree:
    """Explicit Euler over the grid ``ts`` (increasing or decreasing): ``x += (t' - t) f(t, x)``.

    One ``lax.scan``, ``len(ts) - 1`` evaluations of ``f``; first order. Returns the state at
    ``ts[-1]``, or with ``trajectory=True`` the states at every grid time, stacked on a new
    leading axis of length ``len(ts)``.
    """

    def step(t: Array, t_next: Array, x: PyTree) -> PyTree:
        return _combine(x, t_next - t, [1.0], [f(t, x)])

    return _fixed_step(step, x0, ts, trajectory)


def heun(f: VectorField, x0: PyTree, ts: ArrayLike, *, trajectory: bool = False) -> PyTree:
    """Heun's method (explicit trapezoid) over the grid ``ts``; second order.

    ``k1 = f(t, x)``, ``k2 = f(t', x + h k1)``, ``x' = x + h (k1 + k2) / 2`` with ``h = t' - t``:
    two evaluations per step, one ``lax.scan``. Output as in :func:`euler`.
    """

    def step(t: Array, t_next: Array, x: PyTree) -> PyTree:
        h = t_next - t
        k1 = f(t, x)
        k2 = f(t_next, _combine(x, h, [1.0], [k1]))
        return _combine(x, h, [0.5, 0.5], [k1, k2])

    return _fixed_step(step, x0, ts, trajectory)


# ----------------------------------------------------------------------------------------------
# Dormand–Prince 5(4)
# ----------------------------------------------------------------------------------------------

# Dormand & Prince 1980; Hairer, Nørsett & Wanner, "Solving ODEs I", Table II.5.2.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)  # 5th order; = row 7 (FSAL)
# Error weights b - b_hat, b_hat the embedded 4th-order weights (Hairer's dopri5 E1..E7).
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

SUCCESS, MAX_STEPS_REACHED, STEP_SIZE_TOO_SMALL = 0, 1, 2


class ODESolution(NamedTuple):
    """What :func:`dopri5` returns (a pytree: it can leave ``jit`` and ``vmap``).

    Attributes:
      y: the state at ``t`` (at ``t1`` on success).
      t: the time reached.
      num_steps: accepted steps.
      num_rejected: rejected step attempts.
      num_evals: evaluations of the vector field, ``2 + 6 (num_steps + num_rejected)``.
      status: 0 success, 1 ``max_steps`` attempts reached, 2 step size underflow (for example
        a vector field that returns NaN).
    """

    y: PyTree
    t: Array
    num_steps: Array
    num_rejected: Array
    num_evals: Array
    status: Array

    @property
    def success(self) -> Array:
        return self.status == SUCCESS


def _initial_step(
    f: VectorField, t0: Array, y0: PyTree, f0: PyTree, direction: Array, span: Array,
    rtol: Array, atol: Array,
) -> Array:
    """Hairer, Nørsett & Wanner, Sec. II.4: a first step from the local scale of the problem.

    ``d0 = ||y0||``, ``d1 = ||f0||`` (norms scaled by ``atol + rtol |y0|``), ``h0 = 0.01 d0 / d1``;
    one explicit Euler step of size h0 estimates ``d2 = ||f(t0 + h0, y1) - f0|| / h0``, and
    ``h = min(100 h0, (0.01 / max(d1, d2)) ^ (1/5))``. Returns ``|h|``, at most ``|t1 - t0|``.
    """
    scale = jax.tree.map(lambda y: atol + rtol * jnp.abs(y), y0)
    d0 = _rms(jax.tree.map(jnp.divide, y0, scale))
    d1 = _rms(jax.tree.map(jnp.divide, f0, scale))
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, 1e-6, 0.01 * d0 / jnp.where(small, 1.0, d1)).astype(t0.dtype)
    h0 = jnp.minimum(h0, span)
    f1 = f(t0 + direction * h0, _combine(y0, direction * h0, [1.0], [f0]))
    d2 = _rms(jax.tree.map(lambda a, b, s: (a - b) / s, f1, f0, scale)) / h0
    dmax = jnp.maximum(d1, d2)
    flat = dmax <= 1e-15
    h1 = jnp.where(
        flat, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.where(flat, 1.0, dmax)) ** (1.0 / 5.0)
    ).astype(t0.dtype)
    h = jnp.minimum(100.0 * h0, h1)
    return jnp.where(jnp.isfinite(h) & (h > 0), jnp.minimum(h, span), span)


def dopri5(
    f: VectorField,
    x0: PyTree,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
    first_step: ArrayLike | None = None,
    safety: float = 0.9,
    min_factor: float = 0.2,
    max_factor: float = 10.0,
) -> ODESolution:
    """Adaptive Dormand–Prince 5(4) from ``t0`` to ``t1`` (``t1 < t0`` integrates backwards).

    Each step evaluates ``f`` six times; the last stage is ``f`` at the new point, reused as the
    first stage of the next step (FSAL). The local error estimate ``err = h sum_j e_j k_j``
    (5th minus embedded 4th order) is measured in Hairer's norm,
    ``||err|| = sqrt(mean_i (err_i / (atol + rtol max(|y_i|, |y_new_i|)))^2)`` over every element
    of the state (one norm for the whole pytree, so a batch shares one step size). A step is
    accepted when ``||err|| <= 1``; the next step is ``h * clip(safety ||err||^(-1/5),
    min_factor, max_factor)``, and never grows right after a rejection. A non-finite error
    rejects the step with ``min_factor``. The first step comes from Hairer's heuristic unless
    ``first_step`` (its magnitude) is given.

    Everything runs in one ``lax.while_loop``: jittable, vmappable (each batch member then
    keeps its own step size), forward-mode differentiable. ``max_steps`` caps the attempted
    steps, accepted or rejected; check ``status`` or ``success`` on the result.

    Args:
      f: the vector field ``f(t, x)``; ``t`` is a scalar of the state's floating dtype.
      x0: the initial state, a pytree of floating arrays.
      t0, t1: start and end times (may be traced).
      rtol, atol: relative and absolute tolerances.
      max_steps: the most step attempts (a static int).
      first_step: the size of the first attempted step, or None for the heuristic.
      safety, min_factor, max_factor: the controller's constants (Hairer's 0.9, 0.2, 10).

    Returns:
      An :class:`ODESolution`.
    """
    max_steps = _check_steps(max_steps, "max_steps")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, int | float) and not value >= 0:
            raise ValueError(f"dopri5: {name} must be >= 0, got {value}.")
    if isinstance(rtol, int | float) and isinstance(atol, int | float) and rtol == atol == 0:
        raise ValueError("dopri5: rtol and atol cannot both be 0.")
    x0 = _as_state(x0)
    dtype = _time_dtype(x0)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    if t0.shape or t1.shape:
        raise ValueError(f"dopri5: t0 and t1 must be scalars, got {t0.shape} and {t1.shape}.")
    return jax.jit(
        functools.partial(
            _dopri5, f, max_steps=max_steps, safety=safety, min_factor=min_factor,
            max_factor=max_factor,
        )
    )(x0, t0, t1, jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype), first_step)


def _dopri5(
    f: VectorField, x0: PyTree, t0: Array, t1: Array, rtol_: Array, atol_: Array,
    first_step: ArrayLike | None, *, max_steps: int, safety: float, min_factor: float,
    max_factor: float,
) -> ODESolution:
    dtype = t0.dtype
    span = jnp.abs(t1 - t0)
    direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(dtype)
    f0 = f(t0, x0)
    if first_step is None:
        h_abs = _initial_step(f, t0, x0, f0, direction, span, rtol_, atol_)
    else:
        h_abs = jnp.minimum(jnp.abs(jnp.asarray(first_step, dtype)), span)
    tiny = 10.0 * jnp.finfo(dtype).eps

    def attempt(t: Array, y: PyTree, k1: PyTree, h: Array) -> tuple[PyTree, PyTree, Array]:
        ks = [k1]
        for i in range(1, 6):
            ks.append(f(t + _C[i] * h, _combine(y, h, _A[i], ks)))
        y_new = _combine(y, h, _B, ks)
        k7 = f(t + h, y_new)  # FSAL: the first stage of the next step
        err = _combine(jax.tree.map(jnp.zeros_like, y), h, _E, [*ks, k7])
        scale = jax.tree.map(
            lambda a, b: atol_ + rtol_ * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y_new
        )
        return y_new, k7, _rms(jax.tree.map(jnp.divide, err, scale))

    def cond(state: tuple) -> Array:
        t, _, _, _, n_acc, n_rej, _, status = state
        return (t != t1) & (n_acc + n_rej < max_steps) & (status == SUCCESS)

    def body(state: tuple) -> tuple:
        t, y, k1, h_abs, n_acc, n_rej, rejected_before, status = state
        remaining = jnp.abs(t1 - t)
        last = h_abs >= remaining
        h = direction * jnp.where(last, remaining, h_abs)
        y_new, k7, err = attempt(t, y, k1, h)
        finite = jnp.isfinite(err)
        accept = finite & (err <= 1.0)
        err_safe = jnp.where(finite & (err > 0), err, 1.0)
        factor = jnp.where(err > 0, safety * err_safe ** (-1.0 / 5.0), max_factor)
        factor = jnp.clip(factor, min_factor, max_factor)
        factor = jnp.where(finite, factor, min_factor)
        factor = jnp.where(~accept | rejected_before, jnp.minimum(factor, 1.0), factor)
        t_next = jnp.where(accept, jnp.where(last, t1, t + h), t)
        h_next = jnp.abs(h) * factor
        underflow = h_next <= tiny * jnp.maximum(jnp.abs(t_next), 1.0)
        status = jnp.where(underflow & (t_next != t1), STEP_SIZE_TOO_SMALL, status)
        pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(accept, u, v), a, b)
        return (
            t_next, pick(y_new, y), pick(k7, k1), h_next.astype(dtype),
            n_acc + accept.astype(jnp.int32), n_rej + (~accept).astype(jnp.int32), ~accept,
            status,
        )

    zero = jnp.zeros((), jnp.int32)
    init = (t0, x0, f0, h_abs.astype(dtype), zero, zero, jnp.zeros((), bool),
            jnp.asarray(SUCCESS, jnp.int32))
    t, y, _, _, n_acc, n_rej, _, status = jax.lax.while_loop(cond, body, init)
    status = jnp.where((status == SUCCESS) & (t != t1), MAX_STEPS_REACHED, status)
    num_evals = (1 if first_step is not None else 2) + 6 * (n_acc + n_rej)
    return ODESolution(y, t, n_acc, n_rej, num_evals, status)


def solve(
    f: VectorField,
    x0: PyTree,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    method: str = "dopri5",
    num_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
) -> PyTree:
    """The state at ``t1``: ``euler`` or ``heun`` with ``num_steps`` uniform steps, or
    ``dopri5`` with ``rtol``, ``atol`` and ``max_steps`` (its statistics are dropped: call
    :func:`dopri5` for them)."""
    _check_method(method)
    if method == "dopri5":
        return dopri5(f, x0, t0, t1, rtol=rtol, atol=atol, max_steps=max_steps).y
    num_steps = _check_steps(num_steps)
    x0 = _as_state(x0)
    ts = jnp.linspace(jnp.asarray(t0), jnp.asarray(t1), num_steps + 1, dtype=_time_dtype(x0))
    return (euler if method == "euler" else heun)(f, x0, ts)


# ----------------------------------------------------------------------------------------------
# Probability flow
# ----------------------------------------------------------------------------------------------


def probability_flow(
    denoiser: Callable[[Array, Array], Array],
    coefficients: Callable[[Array], Coefficients],
    parameterization: str,
) -> Callable[[Array, Array], Array]:
    """The probability-flow ODE drift ``u(t, x)`` of a Gaussian path, from a denoiser.

    For ``x_t = alpha_t x0 + sigma_t eps``, the marginal velocity (the drift whose flow carries
    ``p_t`` along in time) is ``u(x, t) = alpha' E[x0 | x_t = x] + sigma' E[eps | x_t = x]``,
    i.e. the denoiser's prediction converted to the ``"velocity"`` parameterization. For a VP
    diffusion this is the PF-ODE of Song et al. 2021 (``f - g^2 score / 2``); for flow matching
    with ``parameterization="velocity"`` it is the network itself.

    Args:
      denoiser: ``denoiser(x, t) -> prediction`` on a batch ``x`` of shape ``(B, ...)``, with
        ``t`` of shape ``(B,)``.
      coefficients: ``t -> Coefficients`` at a scalar t, e.g.
        ``functools.partial(parameterization.vp_coefficients, schedule)``.
      parameterization: what the denoiser predicts (eps, x0, v, score, velocity).

    Returns:
      ``u(t, x)`` with a scalar ``t`` and a batch ``x``, for :func:`solve` and
      :func:`log_likelihood`.
    """
    check_parameterization(parameterization)

    def velocity(t: Array, x: Array) -> Array:
        t = jnp.asarray(t, x.dtype)
        pred = denoiser(x, jnp.broadcast_to(t, x.shape[:1]))
        return convert(pred, x, coefficients(t), parameterization, "velocity")

    return velocity


# ----------------------------------------------------------------------------------------------
# Log-likelihood through the instantaneous change of variables
# ----------------------------------------------------------------------------------------------


class LogLikelihood(NamedTuple):
    """What :func:`log_likelihood` returns, per example (leading axis B).

    Attributes:
      log_prob: ``log p_{t0}(x) = prior_log_prob + divergence_integral``.
      prior_log_prob: ``log p_{t1}(z)`` under the base distribution.
      divergence_integral: ``int_{t0}^{t1} div u(x_t, t) dt`` along the trajectory (exact or
        Hutchinson's estimate).
      latent: ``z = x_{t1}``, the end of the trajectory.
      num_evals: vector-field evaluations of the solve (for dopri5; fixed-step counts otherwise).
      success: whether the solve reached ``t1``.
    """

    log_prob: Array
    prior_log_prob: Array
    divergence_integral: Array
    latent: Array
    num_evals: Array
    success: Array


def standard_normal_log_prob(z: Array) -> Array:
    """``log N(z; 0, I)`` of one event (no batch axis): ``-|z|^2 / 2 - (d / 2) log(2 pi)``."""
    return -0.5 * jnp.sum(jnp.square(z)) - 0.5 * z.size * math.log(2.0 * math.pi)


def _divergence_fn(
    velocity: Callable[[Array, Array], Array], probes: Array, average: bool
) -> Callable[[Array, Array], tuple[Array, Array]]:
    """``(u, div)`` of one example: ``div = sum_k p_k . J p_k`` (or its mean over the probes).

    With the standard basis as probes this is the exact trace of the Jacobian (as ``jacfwd``:
    one forward-mode pass per dimension); with random probes it is Hutchinson's estimator.
    ``jax.linearize`` evaluates the velocity once and maps only the tangents.
    """

    def fn(t: Array, x: Array) -> tuple[Array, Array]:
        g = lambda y: velocity(t, y.reshape(x.shape)).reshape(-1)
        u, jvp = jax.linearize(g, x.reshape(-1))
        forms = jnp.sum(probes * jax.vmap(jvp)(probes), axis=-1)
        div = jnp.mean(forms) if average else jnp.sum(forms)
        return u.reshape(x.shape), div

    return fn


def log_likelihood(
    velocity_fn: Callable[[Array, Array], Array],
    x: Array,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    base_log_prob: Callable[[Array], Array] = standard_normal_log_prob,
    method: str = "exact",
    key: Array | None = None,
    probe: str = "rademacher",
    num_probes: int = 1,
    solver: str = "dopri5",
    num_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
) -> LogLikelihood:
    """``log p_{t0}(x)`` of a batch through the ODE ``dx/dt = u(x, t)`` (FFJORD; Song et al. 2021).

    Along a trajectory of the flow, ``d/dt log p_t(x_t) = -div u(x_t, t)``. Integrating from
    data at ``t0`` to noise at ``t1``,

        ``log p_{t0}(x_{t0}) = log p_{t1}(x_{t1}) + int_{t0}^{t1} div u(x_t, t) dt``,

    so the augmented state ``[x, l]`` obeys ``dx/dt = u``, ``dl/dt = +div u`` with ``l(t0) = 0``,
    and the result is ``base_log_prob(x_{t1}) + l(t1)``. (With time running towards the noise,
    a contracting field, div u < 0, lowers the density of the data point, as it should.)

    - ``method="exact"``: ``div u = tr(du/dx)`` from one forward-mode pass per dimension
      (``jacfwd``); for low dimension.
    - ``method="hutchinson"``: ``div u ~ mean_k p_k^T (du/dx) p_k`` with ``num_probes``
      Rademacher or Gaussian probes per example, drawn once from ``key`` and held fixed during
      the solve (FFJORD), so the estimate of ``log p`` is unbiased.

    Batching: the examples are solved independently under ``jax.vmap`` (each with its own
    adaptive steps and probes, so an example's result does not depend on the rest of the batch);
    ``velocity_fn`` receives batches of one example. The vector field must therefore treat the
    examples of a batch independently.

    Args:
      velocity_fn: ``u(t, x)`` with a scalar ``t`` and a batch ``x`` of shape ``(B, ...)``.
      x: the data, shape ``(B, *event_shape)``.
      t0, t1: data and noise times. A diffusion model whose parameterization divides by sigma
        (x0, score) or whose network is unreliable at t = 0 is usually evaluated from a small
        ``t0`` such as 1e-5 (score_sde); the result is then the density of ``x_{t0}``.
      base_log_prob: ``log p_{t1}`` of one event (no batch axis) -> a scalar.
      method: ``"exact"`` or ``"hutchinson"``.
      key: PRNG key for the probes (required for Hutchinson's estimator).
      probe: ``"rademacher"`` (+-1, the lower variance) or ``"gaussian"``.
      num_probes: probes averaged per example.
      solver: ``"dopri5"``, or ``"euler"`` / ``"heun"`` with ``num_steps`` steps.
      rtol, atol, max_steps: dopri5's settings.

    Returns:
      A :class:`LogLikelihood` of per-example arrays.
    """
    if method not in TRACE_METHODS:
        raise ValueError(
            f"unknown divergence method {method!r}; choose one of {', '.join(TRACE_METHODS)}."
        )
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}.")
    _check_method(solver)
    num_probes = _check_steps(num_probes, "num_probes")
    x = jnp.asarray(x)
    if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"log_likelihood: x must be a floating batch of shape (B, ...), got {x.dtype}{x.shape}."
        )
    batch, event_shape = x.shape[0], x.shape[1:]
    dim = math.prod(event_shape)
    if method == "exact":
        probes, probe_axis = jnp.eye(dim, dtype=x.dtype), None  # the same basis for every example
    else:
        if key is None:
            raise ValueError("log_likelihood: Hutchinson's estimator needs a PRNG key.")
        shape = (batch, num_probes, dim)
        if probe == "rademacher":
            probes = jax.random.rademacher(key, shape, x.dtype)
        else:
            probes = jax.random.normal(key, shape, x.dtype)
        probe_axis = 0

    def one(xi: Array, pi: Array) -> tuple[Array, ...]:
        single = lambda t, y: velocity_fn(t, y[None])[0]
        vel_div = _divergence_fn(single, pi, average=method == "hutchinson")

        def augmented(t: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
            u, div = vel_div(t, state[0])
            return u, div.astype(state[1].dtype)

        state0 = (xi, jnp.zeros((), xi.dtype))
        if solver == "dopri5":
            sol = dopri5(augmented, state0, t0, t1, rtol=rtol, atol=atol, max_steps=max_steps)
            (z, integral), evals, ok = sol.y, sol.num_evals, sol.success
        else:
            z, integral = solve(augmented, state0, t0, t1, method=solver, num_steps=num_steps)
            evals = jnp.asarray(num_steps * (1 if solver == "euler" else 2), jnp.int32)
            ok = jnp.asarray(True)
        prior = base_log_prob(z)
        return prior + integral, prior, integral, z, evals, ok

    out = jax.jit(jax.vmap(one, in_axes=(0, probe_axis)))(x, probes)
    return LogLikelihood(*out)
