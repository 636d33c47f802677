"""Image couplings: RealNVP's checkerboard and channel-wise masks, with a conv conditioner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gen.flows.bijector import Array, Bijector, Params, check_context, check_context_dim
from gen.flows.image._common import Conditioner, _check_image, _float
from gen.flows.transformers import Transformer, get_transformer
from gen.nn.resnet import ConvResNet


class ZeroConv(nn.Module):
    """One zero-initialized ``kernel_size`` conv (Glow's ``Conv2dZeros``): the conditioner of
    the learned split prior. The context (a vector, broadcast over the pixels, or an
    ``(H, W, D)`` map) is concatenated to the input channels."""

    out_channels: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        if context is not None:
            ctx = jnp.asarray(context, x.dtype)
            if ctx.ndim == 1:
                ctx = jnp.broadcast_to(ctx, (*x.shape[:2], ctx.shape[0]))
            x = jnp.concatenate([x, ctx], axis=-1)
        k = (self.kernel_size, self.kernel_size)
        zero = nn.initializers.zeros
        conv = nn.Conv(self.out_channels, k, padding="SAME", kernel_init=zero, bias_init=zero,
                       name="conv_out")
        return conv(x)


def _conv_channels(params: Params) -> tuple[int | None, int | None]:
    """(input channels of ``conv_in`` (else ``conv_out``), output channels of ``conv_out``),
    or ``None`` for a conditioner without those layer names."""
    inner = params.get("params", {}) if isinstance(params, Mapping) else {}
    first, last = inner.get("conv_in", inner.get("conv_out")), inner.get("conv_out")
    c_in = None if not isinstance(first, Mapping) else first["kernel"].shape[-2]
    c_out = None if not isinstance(last, Mapping) else last["kernel"].shape[-1]
    return c_in, c_out


def _image_coupling(
    name: str,
    channel_mask: bool,
    parity: int,
    transformer: str | Transformer,
    hidden_channels: int,
    num_blocks: int,
    context_dim: int | None,
    num_groups: int | None,
    conditioner: Conditioner | None,
) -> Bijector:
    """A coupling layer on ``(H, W, C)`` images; see ``checkerboard_coupling``."""
    g = get_transformer(transformer)
    if parity not in (0, 1):
        raise ValueError(f"{name}: parity must be 0 or 1, got {parity}.")
    check_context_dim(context_dim, name)

    def make_net(out_channels: int) -> nn.Module:
        if conditioner is not None:
            return conditioner(out_channels)
        return ConvResNet(
            out_channels, features=hidden_channels, num_blocks=num_blocks, num_groups=num_groups
        )

    def n_in(c: int) -> int:  # conditioner input channels, without context
        return c + 1 if not channel_mask else c // 2

    def n_trans(c: int) -> int:  # transformed channels (checkerboard: all, masked)
        return c if not channel_mask else c // 2

    def channels_from_params(params: Params) -> int | None:
        _, c_out = _conv_channels(params)
        if c_out is None:
            return None
        return c_out // g.num_params * (2 if channel_mask else 1)

    def check_x(x: Array, c: int | None) -> None:
        _check_image(x, name, c)
        if channel_mask and x.shape[-1] % 2:
            raise ValueError(
                f"{name}: a channel-wise coupling needs an even channel count, got shape "
                f"{x.shape}. Use checkerboard_coupling, or squeeze first."
            )

    def context_channels(context: Array, h: int, w: int) -> int:
        shape = tuple(jnp.shape(context))
        if len(shape) == 1:
            return shape[0]
        if len(shape) == 3 and shape[:2] == (h, w):
            return shape[2]
        raise ValueError(
            f"{name}: expected a context vector (D,) or a context map ({h}, {w}, D) per event, "
            f"got a context of shape {shape}; map batches with jax.vmap."
        )

    def check_image_context(context: Array | None, x: Array, expected: int | None) -> None:
        """``expected``: context channels the layer was built with; None: not yet known."""
        size = None if context is None else context_channels(context, *x.shape[:2])
        check_context(context, size, expected, context_dim, name, maps=True)

    def split(x: Array) -> tuple[Array, Array | None]:
        """(conditioner input, checkerboard mask or None)."""
        h, w, c = x.shape
        if channel_mask:
            half = c // 2
            return (x[..., :half] if parity == 0 else x[..., half:]), None
        mask = (np.add.outer(np.arange(h), np.arange(w)) + parity) % 2 == 0  # True: condition
        m = jnp.asarray(mask[..., None], x.dtype)
        return jnp.concatenate([x * m, m], axis=-1), mask[..., None]

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        check_x(x, None)
        x = _float(x)
        check_image_context(context, x, None)
        inp, _ = split(x)
        ctx = None if context is None else _float(context)
        return make_net(n_trans(x.shape[-1]) * g.num_params).init(key, inp, ctx)

    def raw_params(params: Params, x: Array, context: Array | None) -> tuple[Array, Any]:
        check_x(x, channels_from_params(params))
        c = x.shape[-1]
        c_in, _ = _conv_channels(params)
        check_image_context(context, x, None if c_in is None else c_in - n_in(c))
        inp, mask = split(x)
        ctx = None if context is None else jnp.asarray(context, x.dtype)
        raw = make_net(n_trans(c) * g.num_params).apply(params, inp, ctx).astype(x.dtype)
        return raw.reshape(*x.shape[:2], n_trans(c), g.num_params), mask

    def apply(fn: Callable, params: Params, x: Array, context: Array | None) -> tuple[Array, Array]:
        raw, mask = raw_params(params, x, context)
        if channel_mask:
            half = x.shape[-1] // 2
            first, second = x[..., :half], x[..., half:]
            xc, xt = (first, second) if parity == 0 else (second, first)
            yt, ldj = fn(raw, xt)
            y = jnp.concatenate([xc, yt] if parity == 0 else [yt, xc], axis=-1)
            return y, jnp.sum(ldj)
        yt, ldj = fn(raw, x)
        return jnp.where(mask, x, yt), jnp.sum(jnp.where(mask, 0.0, ldj))

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        return apply(g.forward, params, x, context)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        return apply(g.inverse, params, y, context)

    return Bijector(init, forward, inverse)


def checkerboard_coupling(
    parity: int = 0,
    transformer: str | Transformer = "affine",
    hidden_channels: int = 64,
    num_blocks: int = 2,
    context_dim: int | None = None,
    num_groups: int | None = 8,
    conditioner: Conditioner | None = None,
) -> Bijector:
    """RealNVP's checkerboard coupling on an ``(H, W, C)`` image.

    Pixels with ``(h + w + parity) % 2 == 0`` (all their channels) pass through and condition
    the others: ``y = m x + (1 - m) g(x; theta)``, ``theta = NN([m x, m], context)``; log-det
    ``sum_{m = 0} log|g'|``. The mask itself is an input channel of the conditioner.

    Args:
      parity: 0 or 1, which half of the checkerboard is transformed; alternate between layers.
      transformer: ``"affine"`` (RealNVP: ``y = x exp(s) + t``, ``s`` tanh-bounded),
        ``"glow"`` (``glow_affine_transformer``: sigmoid scale), ``"additive"`` (NICE),
        ``"spline"``, or any ``Transformer``.
      hidden_channels, num_blocks, num_groups: the conditioner ``gen.nn.resnet.ConvResNet``
        (width, residual blocks, GroupNorm groups or None); its last conv starts at zero.
      context_dim: context size; ``None`` takes it from ``init``'s context. A context is a
        vector ``(D,)`` (broadcast over the pixels as extra input channels; a class label
        becomes one through ``flows.class_conditional``) or a map ``(H, W, D)``.
      conditioner: overrides the ConvResNet: ``make(out_channels) -> Linen module`` called as
        ``net(x, context)``. Name its first conv ``conv_in`` and its last ``conv_out`` to keep
        the shape and context checks.
    """
    return _image_coupling(
        "checkerboard_coupling", False, parity, transformer, hidden_channels, num_blocks,
        context_dim, num_groups, conditioner,
    )


def channel_coupling(
    parity: int = 0,
    transformer: str | Transformer = "affine",
    hidden_channels: int = 64,
    num_blocks: int = 2,
    context_dim: int | None = None,
    num_groups: int | None = 8,
    conditioner: Conditioner | None = None,
) -> Bijector:
    """Channel-wise coupling (RealNVP after a squeeze; Glow) on an ``(H, W, C)`` image, C even.

    ``parity = 0``: the first ``C/2`` channels pass through and condition the last ``C/2``;
    ``parity = 1``: the other way round. ``y_t = g(x_t; NN(x_c, context))``, log-det
    ``sum log|g'|``. See ``checkerboard_coupling`` for the other arguments.
    """
    return _image_coupling(
        "channel_coupling", True, parity, transformer, hidden_channels, num_blocks,
        context_dim, num_groups, conditioner,
    )
