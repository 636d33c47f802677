"""A small convolutional ResNet, the conditioner of coupling layers on images.

Flows act on one event at a time and ``jax.vmap`` over batches, so the network is
rank-polymorphic: ``x`` is ``(H, W, C_in)`` (one event) or ``(..., H, W, C_in)`` (any leading
batch shape); the leading axes are flattened into one batch axis internally and restored on
the way out. GroupNorm is per example, so calling it on a batch equals vmapping it over the
examples.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.resnet import ConvResNet
    >>> net = ConvResNet(out_channels=6, features=16, num_blocks=1, num_groups=4)
    >>> x = jnp.ones((8, 8, 3))                        # one event, no batch axis
    >>> params = net.init(jax.random.key(0), x)
    >>> net.apply(params, x).shape
    (8, 8, 6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any


class ConvResNet(nn.Module):
    """``apply(params, x, context=None) -> (..., H, W, out_channels)``, zero at init.

    Layout: ``conv_in`` (features) -> ``num_blocks`` pre-activation residual blocks
    ``h + conv(act(norm(conv(act(norm(h))))))`` -> ``act(norm(h))`` -> ``conv_out``
    (out_channels, kernel and bias zero-initialized when ``zero_init_out``, so a coupling layer
    starts at its transformer's zero raw parameters, the identity for additive/affine).
    "SAME" padding keeps H and W.

    Context: either a vector per event, shape ``(..., D_ctx)`` (broadcast over the pixels), or a
    feature map per event, shape ``(..., H, W, D_ctx)``; it is concatenated to ``x`` along the
    channels. The leading shape ``...`` must be ``x``'s.

    Attributes:
      out_channels: output channels.
      features: width of the hidden convolutions.
      num_blocks: residual blocks.
      num_groups: GroupNorm groups (must divide ``features``); None for no normalization.
      kernel_size: spatial kernel size of the hidden convolutions (``conv_out`` included).
      activation: elementwise nonlinearity.
      zero_init_out: zero-initialize ``conv_out``.
      dtype: compute dtype; params are float32 and the output is float32.
    """

    out_channels: int
    features: int = 64
    num_blocks: int = 2
    num_groups: int | None = 8
    kernel_size: int = 3
    activation: Callable[[Array], Array] = nn.relu
    zero_init_out: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        x = jnp.asarray(x)
        if x.ndim < 3:
            raise ValueError(
                f"ConvResNet: expected an image (H, W, C) or a batch (..., H, W, C), got shape "
                f"{x.shape}."
            )
        lead, (H, W, _) = x.shape[:-3], x.shape[-3:]
        h = x.reshape((-1, *x.shape[-3:])).astype(self.dtype)
        if context is not None:
            h = jnp.concatenate([h, self._context_map(jnp.asarray(context), lead, H, W)], -1)
        if self.num_groups is not None and self.features % self.num_groups:
            raise ValueError(
                f"ConvResNet: num_groups={self.num_groups} must divide features={self.features}."
            )

        k = (self.kernel_size, self.kernel_size)

        def conv(features: int, name: str, **kw: Any) -> nn.Conv:
            return nn.Conv(features, k, padding="SAME", dtype=self.dtype, name=name, **kw)

        def norm_act(h: Array, name: str) -> Array:
            if self.num_groups is not None:
                h = nn.GroupNorm(
                    self.num_groups, dtype=self.dtype, use_fast_variance=False, name=name
                )(h)
            return self.activation(h)

        h = conv(self.features, "conv_in")(h)
        for i in range(self.num_blocks):
            r = conv(self.features, f"block_{i}_conv0")(norm_act(h, f"block_{i}_norm0"))
            r = conv(self.features, f"block_{i}_conv1")(norm_act(r, f"block_{i}_norm1"))
            h = h + r
        zero = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)
        out = conv(self.out_channels, "conv_out", **(zero if self.zero_init_out else {}))(
            norm_act(h, "norm_out")
        )
        return out.reshape((*lead, H, W, self.out_channels)).astype(jnp.float32)

    def _context_map(self, context: Array, lead: tuple[int, ...], H: int, W: int) -> Array:
        """The context as a (N, H, W, D_ctx) map, N the flattened batch."""
        n = len(lead)
        if context.ndim == n + 1 and context.shape[:n] == lead:
            ctx = context.reshape((-1, 1, 1, context.shape[-1]))
            ctx = jnp.broadcast_to(ctx, (ctx.shape[0], H, W, ctx.shape[-1]))
        elif context.ndim == n + 3 and context.shape[: n + 2] == (*lead, H, W):
            ctx = context.reshape((-1, H, W, context.shape[-1]))
        else:
            raise ValueError(
                f"ConvResNet: context must have shape {(*lead, 'D_ctx')} (a vector per event) or "
                f"{(*lead, H, W, 'D_ctx')} (a map per event), got {context.shape}."
            )
        return ctx.astype(self.dtype)
