"""The bijector contract: a NamedTuple of pure functions, and its combinators.

A bijector acts on a single event (no batch axis) and returns a scalar log-det::

    params = b.init(key, x, context)            # x: one example event
    y, ldj = b.forward(params, x, context)      # latent -> data, ldj = log|det dy/dx|
    x, ldj = b.inverse(params, y, context)      # data -> latent, ldj = log|det dx/dy|

Batches go through ``jax.vmap``. ``forward`` is the sampling direction, as in TFP and distrax;
a flow's ``log_prob`` runs ``inverse``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> b = flows.chain(flows.shift(), flows.scale())
    >>> params = b.init(jax.random.key(0), jnp.zeros(3))
    >>> y, ldj = b.forward(params, jnp.ones(3))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any
InitFn = Callable[..., Params]
TransformFn = Callable[..., tuple[Array, Array]]


class Bijector(NamedTuple):
    """A bijection as three pure functions over an explicit params pytree.

    Attributes:
      init: ``init(key, x, context=None) -> params``; ``x`` is one example event.
      forward: ``forward(params, x, context=None) -> (y, log|det dy/dx|)``.
      inverse: ``inverse(params, y, context=None) -> (x, log|det dx/dy|)``.
    """

    init: InitFn
    forward: TransformFn
    inverse: TransformFn


def _no_params(key: Array, x: Array, context: Array | None = None) -> tuple[()]:
    del key, x, context
    return ()


def check_event(x: Array, shape: tuple[int, ...], name: str = "bijector") -> None:
    """Raises a ``ValueError`` naming both shapes when ``x`` is not one event of ``shape``."""
    got = tuple(jnp.shape(x))
    if got != tuple(shape):
        raise ValueError(
            f"{name}: expected one event of shape {tuple(shape)}, got shape {got}. "
            "Bijectors act on a single event; map batches with jax.vmap."
        )


def chain(*bijectors: Bijector) -> Bijector:
    """Composes bijectors; ``chain(b1, b2)`` applies ``b1`` first in the forward direction.

    ``forward(x) = b_n(...b_2(b_1(x)))`` and the log-dets add. The params are the tuple of the
    parts' params, as in ``optax.chain``. Every part receives the same ``context``.
    """
    if not bijectors:
        raise ValueError("chain() needs at least one bijector.")

    def init(key: Array, x: Array, context: Array | None = None) -> tuple[Params, ...]:
        params = []
        for b, k in zip(bijectors, jax.random.split(key, len(bijectors)), strict=True):
            p = b.init(k, x, context)
            params.append(p)
            x, _ = b.forward(p, x, context)
        return tuple(params)

    def forward(params: tuple, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        total = jnp.zeros((), jnp.result_type(x.dtype, jnp.float32))
        for b, p in zip(bijectors, params, strict=True):
            x, ldj = b.forward(p, x, context)
            total = total + ldj
        return x, total

    def inverse(params: tuple, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        total = jnp.zeros((), jnp.result_type(y.dtype, jnp.float32))
        for b, p in zip(reversed(bijectors), reversed(params), strict=True):
            y, ldj = b.inverse(p, y, context)
            total = total + ldj
        return y, total

    return Bijector(init, forward, inverse)


def invert(bijector: Bijector) -> Bijector:
    """Swaps the two directions: ``invert(b).forward == b.inverse`` and vice versa.

    ``init`` is ``b.init``: the example event only gives shapes, so for shape-preserving
    bijectors either side's event serves.
    """

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        return bijector.inverse(params, x, context)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        return bijector.forward(params, y, context)

    return Bijector(bijector.init, forward, inverse)


def scan(bijector: Bijector, n: int) -> Bijector:
    """Stacks ``n`` copies of ``bijector`` with stacked params and runs them with ``lax.scan``.

    The compiled program holds one copy of the layer, so compile time does not grow with ``n``.
    Forward applies copy 0 first; params carry a leading axis of size ``n``.
    """
    if n < 1:
        raise ValueError(f"scan() needs n >= 1 copies, got {n}.")

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        keys = jax.random.split(key, n)

        def body(x, k):
            p = bijector.init(k, x, context)
            y, _ = bijector.forward(p, x, context)
            return y, p

        _, params = jax.lax.scan(body, x, keys)
        return params

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        def body(x, p):
            y, ldj = bijector.forward(p, x, context)
            return y, ldj

        y, ldjs = jax.lax.scan(body, x, params)
        return y, jnp.sum(ldjs)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        def body(y, p):
            x, ldj = bijector.inverse(p, y, context)
            return x, ldj

        x, ldjs = jax.lax.scan(body, y, params, reverse=True)
        return x, jnp.sum(ldjs)

    return Bijector(init, forward, inverse)
