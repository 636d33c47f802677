"""Elementwise bijectors: shift, scale, affine, sigmoid, logit, tanh, leaky ReLU.

Each acts on every entry of the event independently, so ``log|det J|`` is the sum of the
log-derivatives over the event. Bijectors with params (``shift``, ``scale``, ``affine``) take the
event shape from ``init``'s example event and check it on every call. The parameterless ones accept
any event shape, unless an ``event_shape`` is given to the factory. They all accept, and ignore,
a ``context``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> b = flows.affine()
    >>> params = b.init(jax.random.key(0), jnp.zeros(3))   # identity at init
    >>> y, ldj = b.forward(params, jnp.ones(3))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array, Bijector, Params, _no_params, check_event

_LOG2 = 0.6931471805599453


def _as_shape(event_shape: int | Sequence[int] | None) -> tuple[int, ...] | None:
    if event_shape is None:
        return None
    if isinstance(event_shape, int):
        return (event_shape,)
    return tuple(int(d) for d in event_shape)


def _parameterless(
    name: str,
    fwd: Callable[[Array], tuple[Array, Array]],
    inv: Callable[[Array], tuple[Array, Array]],
    event_shape: int | Sequence[int] | None,
) -> Bijector:
    """A bijector with empty params from elementwise ``fwd(x) -> (y, ldj per entry)``."""
    shape = _as_shape(event_shape)

    def check(x: Array) -> Array:
        x = jnp.asarray(x)
        if shape is not None:
            check_event(x, shape, name)
        return x

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        y, ldj = fwd(check(x))
        return y, jnp.sum(ldj)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        x, ldj = inv(check(y))
        return x, jnp.sum(ldj)

    def init(key: Array, x: Array, context: Array | None = None) -> tuple[()]:
        check(x)
        return _no_params(key, x, context)

    return Bijector(init, forward, inverse)


def _parameterized(
    name: str,
    param_names: tuple[str, ...],
    fwd: Callable[[dict[str, Array], Array], tuple[Array, Array]],
    inv: Callable[[dict[str, Array], Array], tuple[Array, Array]],
) -> Bijector:
    """A bijector whose params are arrays of the event's shape, zero at init."""

    def init(key: Array, x: Array, context: Array | None = None) -> dict[str, Array]:
        del key, context
        x = jnp.asarray(x)
        dtype = jnp.result_type(x.dtype, jnp.float32)
        return {n: jnp.zeros(x.shape, dtype) for n in param_names}

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        x = jnp.asarray(x)
        check_event(x, params[param_names[0]].shape, name)
        y, ldj = fwd(params, x)
        return y, jnp.sum(ldj)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        y = jnp.asarray(y)
        check_event(y, params[param_names[0]].shape, name)
        x, ldj = inv(params, y)
        return x, jnp.sum(ldj)

    return Bijector(init, forward, inverse)


def shift() -> Bijector:
    """``y = x + b`` with a learned ``b`` of the event's shape (zero at init); log-det 0."""
    return _parameterized(
        "shift",
        ("shift",),
        lambda p, x: (x + p["shift"], jnp.zeros_like(x)),
        lambda p, y: (y - p["shift"], jnp.zeros_like(y)),
    )


def scale() -> Bijector:
    """``y = x * exp(log_scale)``, learned ``log_scale`` (0 at init); log-det ``sum log_scale``."""
    return _parameterized(
        "scale",
        ("log_scale",),
        lambda p, x: (x * jnp.exp(p["log_scale"]), p["log_scale"]),
        lambda p, y: (y * jnp.exp(-p["log_scale"]), -p["log_scale"]),
    )


def affine() -> Bijector:
    """``y = x * exp(log_scale) + shift`` (identity at init); log-det ``sum log_scale``."""
    return _parameterized(
        "affine",
        ("shift", "log_scale"),
        lambda p, x: (x * jnp.exp(p["log_scale"]) + p["shift"], p["log_scale"]),
        lambda p, y: ((y - p["shift"]) * jnp.exp(-p["log_scale"]), -p["log_scale"]),
    )


def _logit_fn(eps: float) -> Callable[[Array], tuple[Array, Array]]:
    """``x = log y - log(1 - y)`` on ``y`` clipped to ``[eps, 1 - eps]``.

    log-det ``log|dx/dy| = -log y - log(1 - y)``. The clip runs before any arithmetic, so values and
    gradients are finite for every input; outside ``[eps, 1 - eps]`` the map is constant (zero
    gradient) and so no longer inverted by ``sigmoid``.
    """

    def fn(y: Array) -> tuple[Array, Array]:
        y = jnp.clip(y, eps, 1.0 - eps)
        log_y, log_1my = jnp.log(y), jnp.log1p(-y)
        return log_y - log_1my, -(log_y + log_1my)

    return fn


def _sigmoid_fn(x: Array) -> tuple[Array, Array]:
    """``y = sigmoid(x)``; ``log dy/dx = log_sigmoid(x) + log_sigmoid(-x)`` (stable for all x)."""
    return jax.nn.sigmoid(x), jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x)


def sigmoid(eps: float = 1e-6, event_shape: int | Sequence[int] | None = None) -> Bijector:
    """``y = 1 / (1 + exp(-x))``; log-det ``sum log_sigmoid(x) + log_sigmoid(-x)``.

    The inverse is ``logit`` with its inputs clipped to ``[eps, 1 - eps]``: finite for every input,
    including those outside ``(0, 1)``. In float32 the forward saturates to exactly 0 or 1 for
    ``|x| > ~17``, so round trips are exact only for moderate ``x``; the log-det stays exact.
    """
    return _parameterless("sigmoid", _sigmoid_fn, _logit_fn(eps), event_shape)


def logit(eps: float = 1e-6, event_shape: int | Sequence[int] | None = None) -> Bijector:
    """``y = log x - log(1 - x)``, the inverse of ``sigmoid``; log-det ``-sum log x + log(1 - x)``.

    Inputs are clipped to ``[eps, 1 - eps]`` before any arithmetic: an input outside ``(0, 1)``
    (or at its ends) maps to ``logit(eps)`` or ``logit(1 - eps)`` with a finite log-det and a zero
    gradient, never to a NaN or an infinity. Pick ``eps`` above the float resolution near 1
    (``1e-6`` suits float32).
    """
    return _parameterless("logit", _logit_fn(eps), _sigmoid_fn, event_shape)


def _tanh_ldj(x: Array) -> Array:
    # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), stable for large |x|.
    return 2.0 * (_LOG2 - x - jax.nn.softplus(-2.0 * x))


def tanh(eps: float = 1e-6, event_shape: int | Sequence[int] | None = None) -> Bijector:
    """``y = tanh(x)``; log-det ``sum 2 (log 2 - x - softplus(-2x))`` = ``sum log(1 - y^2)``.

    The inverse ``atanh`` clips its inputs to ``[-1 + eps, 1 - eps]`` first, so inputs outside
    ``(-1, 1)`` give finite values (constant there, zero gradient), never NaN. In float32 the
    forward saturates to exactly +-1 for ``|x| > ~9``; the log-det stays exact.
    """

    def fwd(x: Array) -> tuple[Array, Array]:
        return jnp.tanh(x), _tanh_ldj(x)

    def inv(y: Array) -> tuple[Array, Array]:
        y = jnp.clip(y, -1.0 + eps, 1.0 - eps)
        x = 0.5 * (jnp.log1p(y) - jnp.log1p(-y))
        return x, -_tanh_ldj(x)

    return _parameterless("tanh", fwd, inv, event_shape)


def leaky_relu(
    negative_slope: float = 0.01, event_shape: int | Sequence[int] | None = None
) -> Bijector:
    """``y = x`` for ``x >= 0``, ``a x`` otherwise, with ``a = negative_slope > 0``.

    log-det ``sum_{x_i < 0} log a``. Invertible for any ``a > 0`` (``a > 1`` is allowed).
    """
    a = float(negative_slope)
    if not a > 0.0:
        raise ValueError(f"leaky_relu: negative_slope must be > 0 to be invertible, got {a}.")
    log_a = math.log(a)

    def fwd(x: Array) -> tuple[Array, Array]:
        neg = x < 0
        return jnp.where(neg, a * x, x), jnp.where(neg, log_a, 0.0).astype(x.dtype)

    def inv(y: Array) -> tuple[Array, Array]:
        neg = y < 0
        return jnp.where(neg, y / a, y), jnp.where(neg, -log_a, 0.0).astype(y.dtype)

    return _parameterless("leaky_relu", fwd, inv, event_shape)
