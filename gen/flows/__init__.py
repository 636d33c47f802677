"""Normalizing flows: bijector primitives, base distributions and flow models.

A bijector is a NamedTuple of pure functions ``(init, forward, inverse)`` over one event; see
``gen.flows.bijector`` for the contract.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> flow = flows.realnvp(2, num_layers=4, hidden=(32, 32))
    >>> params = flow.init(jax.random.key(0), jnp.zeros(2))
    >>> lp = jax.vmap(flow.log_prob, in_axes=(None, 0))(params, jnp.zeros((5, 2)))
"""

from gen.flows.bijector import Bijector, chain, check_event, invert, scan
from gen.flows.coupling import (
    TRANSFORMERS,
    Transformer,
    additive_transformer,
    affine_transformer,
    get_transformer,
    masked_coupling,
    split_coupling,
)
from gen.flows.distributions import Distribution, diag_normal, logistic, standard_normal
from gen.flows.elementwise import (
    affine,
    leaky_relu,
    logit,
    scale,
    shift,
    sigmoid,
    tanh,
)
from gen.flows.flow import Flow, class_conditional, make_flow, one_hot_context, realnvp
from gen.flows.linear import lu_linear, permute, reverse

__all__ = [
    "TRANSFORMERS",
    "Bijector",
    "Distribution",
    "Flow",
    "Transformer",
    "additive_transformer",
    "affine",
    "affine_transformer",
    "chain",
    "check_event",
    "class_conditional",
    "diag_normal",
    "get_transformer",
    "invert",
    "leaky_relu",
    "logistic",
    "logit",
    "lu_linear",
    "make_flow",
    "masked_coupling",
    "one_hot_context",
    "permute",
    "realnvp",
    "reverse",
    "scale",
    "scan",
    "shift",
    "sigmoid",
    "split_coupling",
    "standard_normal",
    "tanh",
]
