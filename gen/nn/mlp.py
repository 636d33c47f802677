"""A multilayer perceptron, the default conditioner of coupling layers.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.mlp import MLP
    >>> net = MLP(features=(64, 64, 6), out_init_zero=True)
    >>> params = net.init(jax.random.key(0), jnp.zeros(3))
    >>> net.apply(params, jnp.ones(3)).shape
    (6,)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax

Array = jax.Array


class MLP(nn.Module):
    """Dense layers ``features[0], ..., features[-1]`` with ``activation`` between them.

    The last layer has no activation. With ``out_init_zero=True`` its kernel and bias start at
    zero, so the network outputs exactly 0 at init: a coupling layer conditioned by it starts as
    the identity (or as whatever its transformer does at zero raw parameters).

    Attributes:
      features: output sizes of the layers; the last entry is the output size.
      activation: elementwise nonlinearity applied after every layer but the last.
      out_init_zero: zero-initialize the last layer's kernel and bias.
    """

    features: Sequence[int]
    activation: Callable[[Array], Array] = nn.gelu
    out_init_zero: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if len(self.features) == 0:
            raise ValueError("MLP needs at least one layer: features must be non-empty.")
        *hidden, out = self.features
        for i, width in enumerate(hidden):
            x = self.activation(nn.Dense(width, name=f"Dense_{i}")(x))
        last_init: dict[str, Any] = {}
        if self.out_init_zero:
            last_init = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)
        return nn.Dense(out, name=f"Dense_{len(hidden)}", **last_init)(x)


def mlp_input_dim(variables: Any) -> int:
    """The input size an initialized ``MLP`` expects, read from its first kernel's shape."""
    return int(variables["params"]["Dense_0"]["kernel"].shape[0])


def mlp_output_dim(variables: Any) -> int:
    """The output size of an initialized ``MLP``, read from its last bias's shape."""
    layers = variables["params"]
    last = max(layers, key=lambda name: int(name.rsplit("_", 1)[1]))
    return int(layers[last]["bias"].shape[0])
