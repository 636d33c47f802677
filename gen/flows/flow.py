"""Flows: a base distribution pushed through a bijector, as pure functions over one event.

``log p(x) = log p_base(z) + log|det dz/dx|`` with ``(z, log|det dz/dx|) = bijector.inverse(x)``;
sampling draws ``z`` from the base and runs ``bijector.forward``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> flow = flows.realnvp(2, num_layers=4, hidden=(32, 32))
    >>> params = flow.init(jax.random.key(0), jnp.zeros(2))
    >>> keys = jax.random.split(jax.random.key(1), 8)
    >>> xs = jax.vmap(flow.sample, in_axes=(None, 0))(params, keys)
    >>> jax.vmap(flow.log_prob, in_axes=(None, 0))(params, xs).shape
    (8,)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen.flows.bijector import Array, Bijector, chain, scan
from gen.flows.coupling import masked_coupling
from gen.flows.distributions import Distribution, standard_normal
from gen.flows.transformers import Transformer

Params = Any


class Flow(NamedTuple):
    """A normalizing flow as pure functions of ``params = {"base": ..., "bijector": ...}``.

    Attributes:
      init: ``init(key, x, context=None) -> params``; ``x`` is one example data event.
      log_prob: ``log_prob(params, x, context=None) -> scalar`` for one event.
      sample: ``sample(params, key, context=None) -> event``.
      sample_and_log_prob: ``sample_and_log_prob(params, key, context=None) -> (x, log p(x))``,
        cheaper than sampling then calling ``log_prob`` (no inverse pass).
      base: the base distribution.
      bijector: the bijector, latent -> data in its forward direction.

    Batches go through ``jax.vmap``: ``jax.vmap(flow.log_prob, in_axes=(None, 0, 0))`` for
    events with contexts, ``in_axes=(None, 0)`` without.
    """

    init: Callable[..., Params]
    log_prob: Callable[..., Array]
    sample: Callable[..., Array]
    sample_and_log_prob: Callable[..., tuple[Array, Array]]
    base: Distribution
    bijector: Bijector


def make_flow(base: Distribution, bijector: Bijector) -> Flow:
    """Bundles ``base`` and ``bijector`` into a ``Flow``; every call passes ``context`` through
    to the bijector."""

    def init(key: Array, x: Array, context: Array | None = None) -> dict[str, Params]:
        k_base, k_bij = jax.random.split(key)
        x = jnp.asarray(x)
        params = {"base": base.init(k_base), "bijector": bijector.init(k_bij, x, context)}
        z = jax.eval_shape(bijector.inverse, params["bijector"], x, context)[0]
        if tuple(z.shape) != base.event_shape:
            raise ValueError(
                f"make_flow: the bijector maps an event of shape {tuple(x.shape)} to a latent "
                f"of shape {tuple(z.shape)}, but the base distribution has event shape "
                f"{base.event_shape}."
            )
        return params

    def log_prob(params: Params, x: Array, context: Array | None = None) -> Array:
        z, ldj = bijector.inverse(params["bijector"], x, context)
        return base.log_prob(params["base"], z) + ldj

    def sample(params: Params, key: Array, context: Array | None = None) -> Array:
        z = base.sample(params["base"], key)
        return bijector.forward(params["bijector"], z, context)[0]

    def sample_and_log_prob(
        params: Params, key: Array, context: Array | None = None
    ) -> tuple[Array, Array]:
        z = base.sample(params["base"], key)
        x, ldj = bijector.forward(params["bijector"], z, context)
        return x, base.log_prob(params["base"], z) - ldj

    return Flow(init, log_prob, sample, sample_and_log_prob, base, bijector)


def one_hot_context(label: Array | int, num_classes: int) -> Array:
    """A class label as a one-hot context vector of shape ``(num_classes,)``."""
    return jax.nn.one_hot(label, num_classes)


def class_conditional(flow: Flow, num_classes: int) -> Flow:
    """Wraps a conditional flow so that its context is an integer class label.

    The label becomes ``one_hot_context(label, num_classes)``, so build the flow's bijector with
    ``context_dim=num_classes``. The conditioners' first dense layer then acts on it as a learned
    class embedding. ``context`` is required (a scalar int per event).
    """

    def encode(label: Array | int | None) -> Array:
        if label is None:
            raise ValueError("class_conditional: pass the class label as context=<int label>.")
        if jnp.ndim(label) != 0:
            raise ValueError(
                f"class_conditional: expected one integer label per event (shape ()), got shape "
                f"{jnp.shape(label)}; map batches with jax.vmap."
            )
        return one_hot_context(label, num_classes)

    def init(key: Array, x: Array, context: Array | int | None = None) -> Params:
        return flow.init(key, x, encode(context))

    def log_prob(params: Params, x: Array, context: Array | int | None = None) -> Array:
        return flow.log_prob(params, x, encode(context))

    def sample(params: Params, key: Array, context: Array | int | None = None) -> Array:
        return flow.sample(params, key, encode(context))

    def sample_and_log_prob(
        params: Params, key: Array, context: Array | int | None = None
    ) -> tuple[Array, Array]:
        return flow.sample_and_log_prob(params, key, encode(context))

    return Flow(init, log_prob, sample, sample_and_log_prob, flow.base, flow.bijector)


def realnvp(
    dim: int,
    num_layers: int = 8,
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    transformer: str | Transformer = "affine",
    activation: Callable[[Array], Array] = nn.gelu,
) -> Flow:
    """RealNVP on vectors: ``num_layers`` couplings with alternating even/odd masks over a
    standard normal base of shape ``(dim,)``.

    Pairs ``(coupling(mask), coupling(1 - mask))`` are identical in structure, so they run under
    ``scan`` (compile time does not grow with depth); an odd last layer is chained after.
    Params: ``{"base": (), "bijector": (stacked pair params[, last layer params])}``.
    """
    if dim < 2:
        raise ValueError(f"realnvp: dim must be >= 2 for a coupling to split it, got {dim}.")
    if num_layers < 1:
        raise ValueError(f"realnvp: num_layers must be >= 1, got {num_layers}.")
    mask = np.arange(dim) % 2 == 0

    def layer(m: np.ndarray) -> Bijector:
        return masked_coupling(m, transformer, hidden, context_dim, activation)

    n_pairs, odd = divmod(num_layers, 2)
    parts = []
    if n_pairs:
        parts.append(scan(chain(layer(mask), layer(~mask)), n_pairs))
    if odd:
        parts.append(layer(mask))
    return make_flow(standard_normal((dim,)), chain(*parts))
