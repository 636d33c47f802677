"""Image bijectors: ActNorm, the invertible 1x1 convolution, squeeze, image couplings and the
multi-scale factor-out architecture of RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal
2018).

Every bijector here acts on ONE image event of shape ``(H, W, C)`` (no batch axis; batches go
through ``jax.vmap``) and returns a scalar log-det. As everywhere in ``gen.flows``, ``forward``
maps latent -> data (sampling) and ``inverse`` maps data -> latent (``log_prob``). The papers
describe their layers in the data -> latent ("encoder") direction; here that is ``inverse``.

Example (one Glow step, and its data-dependent ActNorm init)::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> step = flows.chain(
    ...     flows.channel_coupling(0, "glow", hidden_channels=16, num_groups=None),
    ...     flows.conv1x1(),
    ...     flows.actnorm(),
    ... )
    >>> x = jax.random.uniform(jax.random.key(0), (8, 4, 4, 2))
    >>> params = step.init(jax.random.key(1), x[0])
    >>> params = flows.actnorm_data_init(params, step, x)   # zero mean, unit std per channel
    >>> z, ldj = step.inverse(params, x[0])
"""

from gen.flows.image._actnorm import DATA_INIT_AXIS, ActNormParams, actnorm, actnorm_data_init
from gen.flows.image._common import Conditioner, Shape3
from gen.flows.image._coupling import ZeroConv, channel_coupling, checkerboard_coupling
from gen.flows.image._mixing import conv1x1, squeeze
from gen.flows.image._multiscale import alternate, multi_scale, split_prior

__all__ = [
    "DATA_INIT_AXIS",
    "ActNormParams",
    "Conditioner",
    "Shape3",
    "ZeroConv",
    "actnorm",
    "actnorm_data_init",
    "alternate",
    "channel_coupling",
    "checkerboard_coupling",
    "conv1x1",
    "multi_scale",
    "split_prior",
    "squeeze",
]
