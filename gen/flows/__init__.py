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

from gen.flows.autoregressive import inverse_autoregressive, masked_autoregressive
from gen.flows.bijector import (
    Bijector,
    block,
    chain,
    check_context,
    check_context_dim,
    check_event,
    invert,
    scan,
)
from gen.flows.coupling import masked_coupling, split_coupling
from gen.flows.dequantization import (
    Dequantizer,
    bits_per_dim,
    log_likelihood_bound,
    logit_preprocess,
    uniform_dequantizer,
    variational_dequantizer,
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
from gen.flows.image import (
    ActNormParams,
    actnorm,
    actnorm_data_init,
    alternate,
    channel_coupling,
    checkerboard_coupling,
    conv1x1,
    multi_scale,
    split_prior,
    squeeze,
)
from gen.flows.image_models import glow, realnvp_image
from gen.flows.linear import lu_linear, permute, reverse
from gen.flows.models import maf, nsf_autoregressive, nsf_coupling
from gen.flows.rational_quadratic import rational_quadratic_spline, spline, spline_transformer
from gen.flows.transformers import (
    TRANSFORMERS,
    Transformer,
    additive_transformer,
    affine_transformer,
    get_transformer,
    glow_affine_transformer,
)

__all__ = [
    "CNF",
    "FFJORD",
    "TRANSFORMERS",
    "ActNormParams",
    "Bijector",
    "ConcatConvNet",
    "ConcatSquashDense",
    "ConcatSquashMLP",
    "Dequantizer",
    "Distribution",
    "Flow",
    "Transformer",
    "actnorm",
    "actnorm_data_init",
    "additive_transformer",
    "affine",
    "affine_transformer",
    "alternate",
    "bits_per_dim",
    "block",
    "chain",
    "channel_coupling",
    "check_context",
    "check_context_dim",
    "check_event",
    "checkerboard_coupling",
    "class_conditional",
    "cnf",
    "conv1x1",
    "diag_normal",
    "ffjord",
    "get_transformer",
    "glow",
    "glow_affine_transformer",
    "inverse_autoregressive",
    "invert",
    "leaky_relu",
    "log_likelihood_bound",
    "logistic",
    "logit",
    "logit_preprocess",
    "lu_linear",
    "maf",
    "make_flow",
    "masked_autoregressive",
    "masked_coupling",
    "multi_scale",
    "nsf_autoregressive",
    "nsf_coupling",
    "one_hot_context",
    "permute",
    "rational_quadratic_spline",
    "realnvp",
    "realnvp_image",
    "reverse",
    "scale",
    "scan",
    "shift",
    "sigmoid",
    "spline",
    "spline_transformer",
    "split_coupling",
    "split_prior",
    "squeeze",
    "standard_normal",
    "tanh",
    "uniform_dequantizer",
    "variational_dequantizer",
]


# Continuous flows solve ODEs with diffrax (gen.diffusion.ode): imported on first use, so that
# ``from gen import flows`` does not pay for diffrax and equinox.
_CONTINUOUS = ("CNF", "FFJORD", "ConcatConvNet", "ConcatSquashDense", "ConcatSquashMLP", "cnf",
               "ffjord")


def __getattr__(name: str):
    if name in _CONTINUOUS:
        from gen.flows import continuous

        return getattr(continuous, name)
    raise AttributeError(f"module 'gen.flows' has no attribute {name!r}")
