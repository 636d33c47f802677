"""ODE solvers and likelihoods through the probability-flow ODE, each one XLA loop.

A vector field is ``f(t, x) -> dx/dt`` with a scalar time ``t`` and a state ``x`` that is any
pytree of floating arrays (the solvers never flatten it). Time may run either way: every solver
here integrates from ``t0`` to ``t1`` with ``t1 < t0`` allowed.

- :func:`euler`, :func:`heun`: fixed steps over a time grid, one ``lax.scan`` each.
- :func:`adaptive` (:func:`dopri5`, :func:`tsit5`): adaptive 5(4) Runge–Kutta pairs on diffrax,
  with Hairer's initial step and error norm and an I step-size controller, capped at
  ``max_steps`` attempted steps.
- :func:`solve`: all of them behind one name.
- :func:`probability_flow`: the ODE drift of any Gaussian path ``x_t = alpha_t x0 + sigma_t eps``
  from a denoiser in any parameterization. For every such path the probability-flow drift is
  ``u(x, t) = E[alpha' x0 + sigma' eps | x_t = x] = alpha' x0_hat + sigma' eps_hat``, so one ODE
  serves the diffusion PF-ODE and flow matching alike.
- :func:`log_likelihood`: ``log p_{t0}(x)`` by the instantaneous change of variables, with the
  exact trace or Hutchinson's estimator.

Each solver call is compiled as one XLA program (the solvers ``jax.jit`` themselves; inside an
outer ``jit`` that is a no-op). A vector field is a fresh closure at every call, so an eager
call compiles anew each time: put repeated calls inside your own ``jax.jit``.

Gradients: reverse mode passes through every solver: through the fixed-step ``lax.scan``, and
through the adaptive solves with ``adjoint="recursive"`` (backpropagation through the solver
with checkpoints: the exact gradient of the computed solution) or ``adjoint="backsolve"`` (the
continuous adjoint ODE, O(1) memory). Forward mode (``jax.jvp``) works with ``"recursive"``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.diffusion import ode
    >>> sol = ode.dopri5(lambda t, x: -x, jnp.ones(3), 0.0, 1.0, rtol=1e-6, atol=1e-6)
    >>> bool(sol.success), float(sol.y[0])           # exp(-1)
    (True, 0.36787...)
    >>> ode.heun(lambda t, x: -x, jnp.ones(3), jnp.linspace(0.0, 1.0, 11)).shape
    (3,)
    >>> # d/dk of x(1) = exp(-k) at k = 1, through the adaptive solve:
    >>> float(jax.grad(lambda k: ode.solve(lambda t, x: -k * x, 1.0, 0.0, 1.0))(1.0))
    -0.36787...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp

from gen.diffusion.parameterization import Coefficients, check_parameterization, convert
from gen.diffusion.schedules import _check_steps

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any
VectorField = Callable[[Array, PyTree], PyTree]  # f(t, x) -> dx/dt, t a scalar

ADAPTIVE_METHODS = ("dopri5", "tsit5")
METHODS = ("euler", "heun", *ADAPTIVE_METHODS)
ADJOINTS = ("recursive", "backsolve")
TRACE_METHODS = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")

__all__ = [
    "ADAPTIVE_METHODS",
    "ADJOINTS",
    "METHODS",
    "PROBES",
    "TRACE_METHODS",
    "LogLikelihood",
    "ODESolution",
    "adaptive",
    "dopri5",
    "euler",
    "heun",
    "log_likelihood",
    "probability_flow",
    "solve",
    "standard_normal_log_prob",
    "tsit5",
    "velocity_and_divergence",
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
# Adaptive solvers (diffrax)
# ----------------------------------------------------------------------------------------------

SUCCESS, MAX_STEPS_REACHED, STEP_SIZE_TOO_SMALL = 0, 1, 2

_SOLVERS: dict[str, Callable[[], diffrax.AbstractAdaptiveSolver]] = {
    "dopri5": diffrax.Dopri5,
    "tsit5": diffrax.Tsit5,
}


class ODESolution(NamedTuple):
    """What :func:`adaptive` (and :func:`dopri5`) return (a pytree: it can leave ``jit``/``vmap``).

    Attributes:
      y: the state at ``t`` (at ``t1`` on success).
      t: the time reached.
      num_steps: accepted steps.
      num_rejected: rejected step attempts.
      num_evals: evaluations of the vector field: 6 per attempted step (both solvers are FSAL),
        plus 1 for the first stage, plus 1 for the initial-step heuristic when ``first_step`` is
        None, i.e. ``2 + 6 (num_steps + num_rejected)``.
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


def _nan_safe_rms(tree: PyTree) -> Array:
    """The controller's norm: RMS over every element, with NaN read as an infinite error, so a
    step into a region where the field is NaN is rejected and shrunk until it underflows."""
    value = _rms(tree)
    return jnp.where(jnp.isnan(value), jnp.inf, value)


def _check_adjoint(adjoint: str) -> str:
    if adjoint not in ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; choose one of {', '.join(ADJOINTS)}.")
    return adjoint


def adaptive(
    f: VectorField,
    x0: PyTree,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
    first_step: ArrayLike | None = None,
    safety: float = 0.9,
    min_factor: float = 0.2,
    max_factor: float = 10.0,
    adjoint: str = "recursive",
) -> ODESolution:
    """An adaptive Runge–Kutta solve from ``t0`` to ``t1`` on diffrax (``t1 < t0`` runs backwards).

    ``method``: ``"dopri5"`` (Dormand–Prince 5(4)) or ``"tsit5"`` (Tsitouras 5(4)), both FSAL.
    The local error estimate (5th minus embedded 4th order) is measured in Hairer's norm,
    ``||err|| = sqrt(mean_i (err_i / (atol + rtol max(|y_i|, |y_new_i|)))^2)`` over every element
    of the state (one norm for the whole pytree, so a batch shares one step size). A step is
    accepted when ``||err|| < 1``; the next step is ``h * clip(safety ||err||^(-1/5),
    min_factor, max_factor)`` (at most ``safety`` after a rejection, at least 1 after an
    acceptance: diffrax's I-controller). A NaN error rejects the step with ``min_factor``; a step
    below ``10 eps max(|t0|, |t1|, 1)`` stops the solve with status 2. The first step comes from
    Hairer's heuristic unless ``first_step`` (its magnitude) is given.

    Gradients: reverse mode through the solve with ``adjoint="recursive"`` (diffrax's
    ``RecursiveCheckpointAdjoint``: backpropagation through the solver's operations with
    O(log max_steps) checkpoints; exact gradients of the discrete solve) or ``"backsolve"``
    (``BacksolveAdjoint``: the continuous adjoint ODE solved backwards in time with the same
    tolerances, O(1) memory, gradients accurate to the tolerance). Closed-over arrays of ``f``
    (e.g. network params) are differentiated under both. Forward mode works with
    ``"recursive"``.

    One ``lax.while_loop`` (the checkpointed loop adds loops only under differentiation):
    jittable and vmappable (each batch member then keeps its own step size). ``max_steps``
    caps the attempted steps, accepted or rejected; check ``status`` or ``success``.

    Args:
      f: the vector field ``f(t, x)``; ``t`` is a scalar of the state's floating dtype.
      x0: the initial state, a pytree of floating arrays.
      t0, t1: start and end times (may be traced).
      method: one of ``ADAPTIVE_METHODS``.
      rtol, atol: relative and absolute tolerances.
      max_steps: the most step attempts (a static int).
      first_step: the size of the first attempted step, or None for the heuristic.
      safety, min_factor, max_factor: the controller's constants (Hairer's 0.9, 0.2, 10).
      adjoint: ``"recursive"`` or ``"backsolve"``.

    Returns:
      An :class:`ODESolution`.
    """
    if method not in _SOLVERS:
        raise ValueError(
            f"unknown adaptive ODE method {method!r}; choose one of {', '.join(_SOLVERS)}."
        )
    _check_adjoint(adjoint)
    max_steps = _check_steps(max_steps, "max_steps")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, int | float) and not value >= 0:
            raise ValueError(f"{method}: {name} must be >= 0, got {value}.")
    if isinstance(rtol, int | float) and isinstance(atol, int | float) and rtol == atol == 0:
        raise ValueError(f"{method}: rtol and atol cannot both be 0.")
    x0 = _as_state(x0)
    dtype = _time_dtype(x0)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    if t0.shape or t1.shape:
        raise ValueError(f"{method}: t0 and t1 must be scalars, got {t0.shape} and {t1.shape}.")
    run = functools.partial(
        _adaptive, f, method=method, max_steps=max_steps, safety=safety, min_factor=min_factor,
        max_factor=max_factor, adjoint=adjoint, has_first_step=first_step is not None,
    )
    first = jnp.asarray(0.0 if first_step is None else first_step, dtype)
    return jax.jit(run)(x0, t0, t1, jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype), first)


def _adaptive(
    f: VectorField, x0: PyTree, t0: Array, t1: Array, rtol: Array, atol: Array, first: Array, *,
    method: str, max_steps: int, safety: float, min_factor: float, max_factor: float,
    adjoint: str, has_first_step: bool,
) -> ODESolution:
    dtype = t0.dtype
    if adjoint == "backsolve":
        # The continuous adjoint differentiates only what diffrax sees: hoist the arrays that
        # ``f`` closes over (params, under grad: tracers) into ``args``.
        g, consts = jax.closure_convert(f, t0, x0)
        term = diffrax.ODETerm(lambda t, y, args: g(t, y, *args))
        args, adj = tuple(consts), diffrax.BacksolveAdjoint()
    else:
        term = diffrax.ODETerm(lambda t, y, args: f(t, y))
        args, adj = None, diffrax.RecursiveCheckpointAdjoint()
    direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(dtype)
    dt0 = direction * jnp.minimum(jnp.abs(first), jnp.abs(t1 - t0)) if has_first_step else None
    scale = jnp.maximum(jnp.maximum(jnp.abs(t0), jnp.abs(t1)), 1.0)
    controller = diffrax.PIDController(
        rtol=rtol, atol=atol, norm=_nan_safe_rms, safety=safety, factormin=min_factor,
        factormax=max_factor, dtmin=10.0 * jnp.finfo(dtype).eps * scale, force_dtmin=False,
    )
    sol = diffrax.diffeqsolve(
        term, _SOLVERS[method](), t0, t1, dt0, x0, args, stepsize_controller=controller,
        adjoint=adj, max_steps=max_steps, throw=False,
    )
    status = jnp.where(
        sol.result == diffrax.RESULTS.successful, SUCCESS,
        jnp.where(sol.result == diffrax.RESULTS.max_steps_reached, MAX_STEPS_REACHED,
                  STEP_SIZE_TOO_SMALL),
    ).astype(jnp.int32)
    n_acc = jnp.asarray(sol.stats["num_accepted_steps"], jnp.int32)
    n_rej = jnp.asarray(sol.stats["num_rejected_steps"], jnp.int32)
    num_evals = (1 if has_first_step else 2) + 6 * (n_acc + n_rej)
    y = jax.tree.map(lambda leaf: leaf[-1], sol.ys)
    return ODESolution(y, sol.ts[-1], n_acc, n_rej, num_evals, status)


def dopri5(f: VectorField, x0: PyTree, t0: ArrayLike, t1: ArrayLike, **kwargs: Any) -> ODESolution:
    """Adaptive Dormand–Prince 5(4): :func:`adaptive` with ``method="dopri5"`` (same keywords)."""
    return adaptive(f, x0, t0, t1, method="dopri5", **kwargs)


def tsit5(f: VectorField, x0: PyTree, t0: ArrayLike, t1: ArrayLike, **kwargs: Any) -> ODESolution:
    """Adaptive Tsitouras 5(4): :func:`adaptive` with ``method="tsit5"`` (same keywords)."""
    return adaptive(f, x0, t0, t1, method="tsit5", **kwargs)


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
    adjoint: str = "recursive",
) -> PyTree:
    """The state at ``t1``: ``euler`` or ``heun`` with ``num_steps`` uniform steps (reverse mode
    through the ``lax.scan``), or ``dopri5`` / ``tsit5`` with ``rtol``, ``atol``, ``max_steps``
    and ``adjoint`` (its statistics are dropped: call :func:`adaptive` for them)."""
    _check_method(method)
    if method in _SOLVERS:
        return adaptive(
            f, x0, t0, t1, method=method, rtol=rtol, atol=atol, max_steps=max_steps,
            adjoint=adjoint,
        ).y
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
      num_evals: vector-field evaluations of the solve (adaptive: see :class:`ODESolution`).
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


def velocity_and_divergence(
    velocity: Callable[[Array, Array], Array], probes: Array, average: bool
) -> Callable[[Array, Array], tuple[Array, Array]]:
    """``(t, x) -> (u, div)`` for one example: the velocity ``u`` and ``div = sum_k p_k . J p_k``
    (or its mean over the probes), the divergence term of a likelihood ODE (here and in FFJORD).

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
    adjoint: str = "recursive",
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
      solver: ``"dopri5"`` or ``"tsit5"`` (adaptive, diffrax), or ``"euler"`` / ``"heun"`` with
        ``num_steps`` steps.
      rtol, atol, max_steps: the adaptive solver's settings.
      adjoint: how reverse mode passes through an adaptive solve, ``"recursive"`` or
        ``"backsolve"`` (see :func:`adaptive`); the result is differentiable with respect to
        ``x`` and to whatever ``velocity_fn`` closes over (e.g. a network's params).

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
    _check_adjoint(adjoint)
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
        vel_div = velocity_and_divergence(single, pi, average=method == "hutchinson")

        def augmented(t: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
            u, div = vel_div(t, state[0])
            return u, div.astype(state[1].dtype)

        state0 = (xi, jnp.zeros((), xi.dtype))
        if solver in _SOLVERS:
            sol = adaptive(augmented, state0, t0, t1, method=solver, rtol=rtol, atol=atol,
                           max_steps=max_steps, adjoint=adjoint)
            (z, integral), evals, ok = sol.y, sol.num_evals, sol.success
        else:
            z, integral = solve(augmented, state0, t0, t1, method=solver, num_steps=num_steps)
            evals = jnp.asarray(num_steps * (1 if solver == "euler" else 2), jnp.int32)
            ok = jnp.asarray(True)
        prior = base_log_prob(z)
        return prior + integral, prior, integral, z, evals, ok

    out = jax.jit(jax.vmap(one, in_axes=(0, probe_axis)))(x, probes)
    return LogLikelihood(*out)
