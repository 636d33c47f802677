"""Base distributions: NamedTuples of pure functions over one event.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> base = flows.diag_normal((3,))
    >>> params = base.init(jax.random.key(0))
    >>> x = base.sample(params, jax.random.key(1))
    >>> base.log_prob(params, x).shape
    ()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array, check_event

Params = Any
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Distribution(NamedTuple):
    """A distribution over single events of a fixed shape.

    Attributes:
      init: ``init(key, event_shape=None) -> params``; ``event_shape``, if given, must equal the
        factory's (a ``ValueError`` otherwise).
      log_prob: ``log_prob(params, x) -> scalar`` for one event ``x``.
      sample: ``sample(params, key) -> event``; batches via ``jax.vmap`` over keys.
      event_shape: the event shape fixed at factory time.
    """

    init: Callable[..., Params]
    log_prob: Callable[[Params, Array], Array]
    sample: Callable[[Params, Array], Array]
    event_shape: tuple[int, ...]


def _as_shape(event_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(event_shape, int):
        return (event_shape,)
    return tuple(int(d) for d in event_shape)


def _init_check(name: str, shape: tuple[int, ...], event_shape: Any) -> None:
    if event_shape is not None and _as_shape(event_shape) != shape:
        raise ValueError(
            f"{name}: built for event shape {shape}, but init got event_shape "
            f"{_as_shape(event_shape)}."
        )


def standard_normal(event_shape: int | Sequence[int]) -> Distribution:
    """``N(0, I)``; ``log p(x) = -sum(x^2) / 2 - n log(2 pi) / 2``, ``n = prod(event_shape)``.

    No params.
    """
    shape = _as_shape(event_shape)
    n = math.prod(shape)

    def init(key: Array, event_shape: Any = None) -> tuple[()]:
        del key
        _init_check("standard_normal", shape, event_shape)
        return ()

    def log_prob(params: Params, x: Array) -> Array:
        del params
        check_event(x, shape, "standard_normal")
        return -0.5 * jnp.sum(jnp.square(x)) - n * _HALF_LOG_2PI

    def sample(params: Params, key: Array) -> Array:
        del params
        return jax.random.normal(key, shape)

    return Distribution(init, log_prob, sample, shape)


def diag_normal(event_shape: int | Sequence[int]) -> Distribution:
    """``N(loc, diag(exp(2 log_scale)))`` with learned ``loc`` and ``log_scale`` (0 at init).

    ``log p(x) = sum(-z^2 / 2 - log_scale) - n log(2 pi) / 2``, ``z = (x - loc) / exp(log_scale)``.
    """
    shape = _as_shape(event_shape)
    n = math.prod(shape)

    def init(key: Array, event_shape: Any = None) -> dict[str, Array]:
        del key
        _init_check("diag_normal", shape, event_shape)
        return {"loc": jnp.zeros(shape), "log_scale": jnp.zeros(shape)}

    def log_prob(params: Params, x: Array) -> Array:
        check_event(x, shape, "diag_normal")
        z = (x - params["loc"]) * jnp.exp(-params["log_scale"])
        return jnp.sum(-0.5 * jnp.square(z) - params["log_scale"]) - n * _HALF_LOG_2PI

    def sample(params: Params, key: Array) -> Array:
        eps = jax.random.normal(key, shape, params["loc"].dtype)
        return params["loc"] + jnp.exp(params["log_scale"]) * eps

    return Distribution(init, log_prob, sample, shape)


def logistic(event_shape: int | Sequence[int]) -> Distribution:
    """The standard logistic distribution, iid per entry (NICE's prior).

    ``log p(x) = sum log_sigmoid(x) + log_sigmoid(-x)``; sampled as ``logit(u)``, ``u ~ U(0, 1)``.
    No params.
    """
    shape = _as_shape(event_shape)

    def init(key: Array, event_shape: Any = None) -> tuple[()]:
        del key
        _init_check("logistic", shape, event_shape)
        return ()

    def log_prob(params: Params, x: Array) -> Array:
        del params
        check_event(x, shape, "logistic")
        return jnp.sum(jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x))

    def sample(params: Params, key: Array) -> Array:
        del params
        return jax.random.logistic(key, shape)

    return Distribution(init, log_prob, sample, shape)
