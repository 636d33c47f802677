"""Image flow models: multi-scale RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal 2018).

Both return a ``Flow`` over single ``(H, W, C)`` events with a standard normal base of the same
shape (the ``multi_scale`` latent has the event's shape). With ``logit=alpha`` (RealNVP's
``alpha = 0.05``) the data are expected in ``[0, 1]`` (``gen.data.preprocess``'s
``scale='unit'``: ``y = (x + u) / 256``) and pass through ``logit_preprocess``, whose log-det is
counted: ``log_prob`` is a density over the ``[0, 1]`` data, and
``Preprocess.bits_per_dim`` turns it into 8-bit bits/dim. Params:
``{"base": (), "bijector": (core_params, ())}`` with logit, ``core_params`` without.

Glow uses ActNorm: after ``init``, call ``actnorm_data_init(params, flow, batch_x)`` once.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> flow = flows.glow((8, 8, 1), num_scales=2, num_steps=2, hidden_channels=16)
    >>> x = jax.random.uniform(jax.random.key(0), (16, 8, 8, 1))
    >>> params = flow.init(jax.random.key(1), x[0])
    >>> params = flows.actnorm_data_init(params, flow, x)
    >>> jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x).shape
    (16,)
"""

from __future__ import annotations

from collections.abc import Sequence

from gen.flows.bijector import Bijector, chain, scan
from gen.flows.dequantization import logit_preprocess
from gen.flows.distributions import standard_normal
from gen.flows.flow import Flow, make_flow
from gen.flows.image import (
    Shape3,
    actnorm,
    alternate,
    channel_coupling,
    checkerboard_coupling,
    conv1x1,
    multi_scale,
)
from gen.flows.transformers import Transformer


def _shape3(name: str, shape: Sequence[int]) -> Shape3:
    s = tuple(int(d) for d in shape)
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"{name}: shape must be a positive (H, W, C), got {tuple(shape)}.")
    return s  # type: ignore[return-value]


def _image_flow(shape: Shape3, core: Bijector, logit: float | None) -> Flow:
    bijector = core if logit is None else chain(core, logit_preprocess(logit, event_shape=shape))
    return make_flow(standard_normal(shape), bijector)


def realnvp_image(
    shape: Sequence[int],
    num_scales: int = 2,
    num_steps: int = 3,
    hidden_channels: int = 64,
    num_blocks: int = 2,
    *,
    transformer: str | Transformer = "affine",
    context_dim: int | None = None,
    num_groups: int | None = 8,
    learned_prior: bool = False,
    logit: float | None = 0.05,
) -> Flow:
    """Multi-scale RealNVP (Dinh et al. 2017, Sec. 3.6) on ``(H, W, C)`` images.

    Each scale but the last (data -> latent): ``num_steps`` checkerboard couplings of
    alternating parity, squeeze, ``num_steps`` channel-wise couplings of alternating parity,
    factor out half the channels. The last scale: ``num_steps + 1`` checkerboard couplings
    (the paper: 3 per stage and 4 at the end). Couplings are affine with a tanh-bounded scale
    (``transformer``) and a ConvResNet conditioner (``hidden_channels`` wide, ``num_blocks``
    residual blocks, GroupNorm with ``num_groups`` instead of the paper's batch norm). Pairs of
    couplings run under ``scan``. ``H`` and ``W`` must be divisible by ``2^(num_scales - 1)``.

    Args:
      context_dim: a conditioning vector's size (``class_conditional`` for labels).
      learned_prior: Glow's learned prior on the factored-out halves (the paper: standard normal).
      logit: ``alpha`` of the logit preprocessing (data in ``[0, 1]``), or ``None`` for none.
    """
    s = _shape3("realnvp_image", shape)

    def cb(parity: int) -> Bijector:
        return checkerboard_coupling(
            parity, transformer, hidden_channels, num_blocks, context_dim, num_groups
        )

    def ch(parity: int) -> Bijector:
        return channel_coupling(
            parity, transformer, hidden_channels, num_blocks, context_dim, num_groups
        )

    core = multi_scale(
        s,
        num_scales,
        step=lambda _: alternate(ch, num_steps),
        pre_squeeze=lambda _: alternate(cb, num_steps),
        final=lambda _: alternate(cb, num_steps + 1),
        learned_prior=learned_prior,
        context_dim=context_dim,
    )
    return _image_flow(s, core, logit)


def glow(
    shape: Sequence[int],
    num_scales: int = 3,
    num_steps: int = 32,
    hidden_channels: int = 512,
    num_blocks: int = 1,
    *,
    transformer: str | Transformer = "glow",
    context_dim: int | None = None,
    num_groups: int | None = 8,
    learned_prior: bool = True,
    logit: float | None = 0.05,
) -> Flow:
    """Glow (Kingma & Dhariwal 2018) on ``(H, W, C)`` images: ``num_scales`` (L) levels of
    squeeze, ``num_steps`` (K) steps of flow, split (not after the last level).

    One step, data -> latent: ActNorm -> invertible 1x1 conv (LU) -> affine channel coupling
    (``transformer='glow'``: sigmoid scale; ``'affine'``: tanh-bounded ``exp``; ``'additive'``).
    The K structurally identical steps of a level run under ``scan``. The coupling network is a
    ConvResNet (``hidden_channels`` wide, ``num_blocks`` residual blocks, GroupNorm with
    ``num_groups``; its last conv starts at zero, as Glow's ``Conv2dZeros``). ``learned_prior``
    puts Glow's conditional prior ``N(mu(z1), sigma(z1))`` on each factored-out half. ``H`` and
    ``W`` must be divisible by ``2^num_scales``.

    Args:
      context_dim: a conditioning vector's size (couplings and priors see it; class labels
        through ``class_conditional``).
      logit: ``alpha`` of the logit preprocessing (data in ``[0, 1]``), or ``None``. Glow
        itself has no logit and models the centred pixels directly: ``logit=None``, with
        ``data.scale='symmetric'`` for data in ``[-1, 1]``.

    Not included: Glow's learned top prior and class-prediction head. Initialize ActNorm from
    data with ``actnorm_data_init`` after ``init``.
    """
    s = _shape3("glow", shape)
    if num_steps < 1:
        raise ValueError(f"glow: num_steps must be >= 1, got {num_steps}.")

    def step(_: Shape3) -> Bijector:
        coupling = channel_coupling(
            0, transformer, hidden_channels, num_blocks, context_dim, num_groups
        )
        # Forward (latent -> data) order; the data -> latent pass runs it backwards:
        # ActNorm, 1x1 conv, coupling.
        return scan(chain(coupling, conv1x1(), actnorm()), num_steps)

    core = multi_scale(s, num_scales, step, learned_prior=learned_prior, context_dim=context_dim)
    return _image_flow(s, core, logit)
