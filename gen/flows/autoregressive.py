"""Masked autoregressive bijectors: MAF (Papamakarios et al. 2017) and IAF (Kingma et al. 2016).

A MAF layer maps a latent ``z`` to data ``x`` one dim at a time, in an autoregressive order::

    x_d = g(z_d; theta_d),   theta_d = MADE(x_{<d}, context)_d          (forward: sampling)
    z_d = g^{-1}(x_d; theta_d)                                          (inverse: density)
    log|det dz/dx| = sum_d log|dg^{-1}/dx_d (x_d; theta_d)|

The Jacobian is triangular in the order, so its log-det is the sum of the elementwise ones.

- **Density (inverse) is one parallel pass**: ``x`` is known, so the MADE gives every
  ``theta_d`` at once.
- **Sampling (forward) is sequential**: ``D`` MADE passes in a ``lax.scan``. Pass ``k`` fixes the
  dim of degree ``k``, whose parameters depend only on dims fixed before it; dims not yet fixed
  stay at 0 (a ``where`` on the degree, no scatter). After ``D - 1`` passes, a last pass
  computes every ``theta_d`` from the final ``x``, and returns ``x`` and the log-det.

``g`` is a ``Transformer`` (``gen.flows.transformers``): ``"affine"`` (MAF), ``"spline"`` (NSF-AR,
rational-quadratic), or any object with ``num_params``, ``forward`` and ``inverse``.

IAF is ``invert(masked_autoregressive(...))``: its forward (sampling) is the single parallel
pass, its inverse (density of external data) the sequential one; use it where samples are drawn
often and scored only at their own draws (``Flow.sample_and_log_prob`` needs no inverse), e.g.
variational posteriors.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> layer = flows.masked_autoregressive("affine", hidden=(32, 32))
    >>> params = layer.init(jax.random.key(0), jnp.zeros(3))
    >>> x, ldj = layer.forward(params, jnp.ones(3))      # sampling: 3 sequential passes
    >>> z, ldj_inv = layer.inverse(params, x)            # density: one pass
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen.flows.bijector import (
    Array,
    Bijector,
    Params,
    check_context,
    check_context_dim,
    check_event,
    invert,
)
from gen.flows.transformers import Transformer, get_transformer
from gen.nn.made import MADE, input_degrees, made_event_dim, made_input_dim


def masked_autoregressive(
    transformer: str | Transformer = "affine",
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    order: Sequence[int] | np.ndarray | None = None,
    event_dim: int | None = None,
    activation: Callable[[Array], Array] = nn.gelu,
) -> Bijector:
    """A masked autoregressive (MAF) layer on a vector event; forward = latent -> data.

    ``inverse(x)`` (density) is one MADE pass; ``forward(z)`` (sampling) is ``D`` passes in a
    ``lax.scan``. See the module docstring for the math.

    Args:
      transformer: ``"affine"`` (``x = z exp(s) + t``, bounded ``s``), ``"spline"``, ``"additive"``
        or a ``Transformer``. The MADE's output layer starts at zero, so the layer starts at the
        transformer's zero-parameter map (the identity for these three).
      hidden: hidden widths of the MADE (any width; narrower than ``D`` is allowed).
      context_dim: size of the conditioning vector. ``None`` takes it from ``init``'s context
        (no context at init: unconditional). A conditional layer called without context, or an
        unconditional one called with context, raises ``ValueError``.
      order: the autoregressive order, a permutation of ``range(D)``; ``order[0]`` is sampled
        first. Default ``0, ..., D-1``. Fixes ``D = len(order)``.
      event_dim: the event size ``D``; by default from ``order`` or ``init``'s example event
        (then read back from the params and checked on every call).
      activation: the MADE's nonlinearity.

    Params: the MADE's Flax variables ``{"params": {"hidden_i": ..., "output": ...}}``.
    """
    g = get_transformer(transformer)
    name = "maf"
    check_context_dim(context_dim, name)
    order_t = None
    if order is not None:
        order_t = tuple(int(i) for i in np.asarray(order).reshape(-1))
        input_degrees(len(order_t), order_t)  # validates the permutation
        if event_dim is not None and event_dim != len(order_t):
            raise ValueError(f"{name}: order has {len(order_t)} entries but event_dim={event_dim}.")
        event_dim = len(order_t)
    if event_dim is not None and event_dim < 1:
        raise ValueError(f"{name}: event_dim must be >= 1, got {event_dim}.")
    made = MADE(g.num_params, tuple(hidden), order_t, activation)

    def dim_of(params: Params) -> int:
        return event_dim if event_dim is not None else made_event_dim(params, g.num_params)

    def context_of(context: Array | None, expected: int | None) -> Array | None:
        """The context as a vector; ``expected`` is None at init (then ``context_dim`` rules)."""
        size = None if context is None else int(np.prod(jnp.shape(context)))
        check_context(context, size, expected, context_dim, name)
        return None if context is None else jnp.reshape(context, (-1,))

    def prepare(params: Params, v: Array, context: Array | None) -> tuple[int, Array | None]:
        d = dim_of(params)
        check_event(v, (d,), name)
        return d, context_of(context, made_input_dim(params) - d)

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        x = jnp.asarray(x)
        if event_dim is None and x.ndim != 1:
            raise ValueError(
                f"{name}: expected one vector event of shape (D,), got shape {x.shape}. "
                "Bijectors act on a single event; map batches with jax.vmap."
            )
        check_event(x, (event_dim if event_dim is not None else x.shape[0],), name)
        x = x.astype(jnp.result_type(x.dtype, jnp.float32))
        return made.init(key, x, context_of(context, None))

    def forward(params: Params, z: Array, context: Array | None = None) -> tuple[Array, Array]:
        d, ctx = prepare(params, z, context)
        deg = input_degrees(d, order_t).astype(np.int32)

        dtype = jnp.result_type(z.dtype, jnp.float32, *jax.tree.leaves(params))

        def step(x: Array, k: Array) -> tuple[Array, None]:
            y, _ = g.forward(made.apply(params, x, ctx), z)
            x = jnp.where(deg <= k, y, jnp.zeros_like(y))  # fixes the dim of degree k
            return x.astype(dtype), None

        x0 = jnp.zeros(z.shape, dtype)
        x, _ = jax.lax.scan(step, x0, jnp.arange(d - 1))
        # Every theta_d depends only on dims of lower degree, all fixed by now.
        x, ldj = g.forward(made.apply(params, x, ctx), z)
        return x, jnp.sum(ldj)

    def inverse(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        _, ctx = prepare(params, x, context)
        z, ldj = g.inverse(made.apply(params, x, ctx), x)
        return z, jnp.sum(ldj)

    return Bijector(init, forward, inverse)


def inverse_autoregressive(
    transformer: str | Transformer = "affine",
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    order: Sequence[int] | np.ndarray | None = None,
    event_dim: int | None = None,
    activation: Callable[[Array], Array] = nn.gelu,
) -> Bijector:
    """An inverse autoregressive (IAF) layer: ``invert(masked_autoregressive(...))``, same
    arguments.

    Forward (latent -> data, sampling) is one parallel MADE pass, ``x_d = g^{-1}(z_d;
    MADE(z)_d)``, so ``theta_d`` depends on the latent ``z_{<d}``; inverse (density) is the
    ``D``-pass sequential one. ``sample_and_log_prob`` of a flow built on it is fast.
    """
    layer = masked_autoregressive(transformer, hidden, context_dim, order, event_dim, activation)
    return invert(layer)

