"""Convolutional encoder and decoder stacks (van den Oord et al. 2017's VQ-VAE layout).

``ConvEncoder`` maps images ``(B, H, W, C)`` to feature maps ``(B, ceil(H / 2^n), ..., F)`` with
``n = len(channels)`` stride-2 4x4 convolutions, a 3x3 convolution and ``num_res_blocks``
residual blocks ``h + conv1x1(relu(conv3x3(relu(h))))``. ``ConvDecoder`` mirrors it: a 3x3
convolution, the residual blocks, then stride-2 4x4 transposed convolutions back to ``out_shape``.
Sizes that are not powers of two (MNIST's 28) are handled by cropping each upsampled map to the
encoder's size at that level (28 -> 14 -> 7 -> 4 down, 4 -> 8[:7] -> 14 -> 28 up).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.autoencoder import ConvDecoder, ConvEncoder
    >>> enc = ConvEncoder(channels=(16, 32), num_res_blocks=1)
    >>> x = jnp.zeros((2, 28, 28, 1))
    >>> h, _ = enc.init_with_output(jax.random.key(0), x)
    >>> h.shape
    (2, 7, 7, 32)
    >>> dec = ConvDecoder(out_shape=(28, 28, 3), channels=(16, 32), num_res_blocks=1)
    >>> dec.init_with_output(jax.random.key(1), h)[0].shape
    (2, 28, 28, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def downsampled_sizes(size: int, levels: int) -> list[int]:
    """``[size, ceil(size / 2), ...]``: the spatial size after each of ``levels`` halvings."""
    sizes = [size]
    for _ in range(levels):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


class ResidualStack(nn.Module):
    """``num_blocks`` blocks ``h + conv1x1(act(conv3x3(act(h))))``, then ``act``."""

    num_blocks: int
    hidden: int
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h: Array) -> Array:
        for i in range(self.num_blocks):
            r = nn.Conv(self.hidden, (3, 3), padding="SAME", dtype=self.dtype,
                        name=f"res_{i}_conv3")(self.activation(h))
            r = nn.Conv(h.shape[-1], (1, 1), dtype=self.dtype, name=f"res_{i}_conv1")(
                self.activation(r))
            h = h + r
        return self.activation(h)


class ConvEncoder(nn.Module):
    """``(B, H, W, C) -> (B, h, w, channels[-1])`` feature maps, ``h = ceil(H / 2^n)``.

    Attributes:
      channels: output channels of the stride-2 convolutions, one per halving.
      num_res_blocks: residual blocks at the lowest resolution.
      res_hidden: width of the residual blocks' 3x3 convolutions (default: ``channels[-1]``).
      activation: elementwise nonlinearity.
      dtype: compute dtype (params stay float32).
    """

    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 2
    res_hidden: int | None = None
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4:
            raise ValueError(f"ConvEncoder: expected images (B, H, W, C), got shape {x.shape}.")
        h = x.astype(self.dtype)
        for i, c in enumerate(self.channels):
            h = nn.Conv(c, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                        name=f"down_{i}")(h)
            h = self.activation(h)
        h = nn.Conv(self.channels[-1], (3, 3), padding="SAME", dtype=self.dtype, name="mid")(h)
        return ResidualStack(self.num_res_blocks, self.res_hidden or self.channels[-1],
                             self.activation, self.dtype, name="res")(h)


class ConvDecoder(nn.Module):
    """``(B, h, w, F) -> (B, *out_shape)``, the mirror of :class:`ConvEncoder`.

    The output is linear (no activation) in float32: the parameters of a likelihood.

    Attributes:
      out_shape: ``(H, W, C_out)`` of the output.
      channels: the encoder's channels; the transposed convolutions use them in reverse.
      num_res_blocks, res_hidden, activation, dtype: as for :class:`ConvEncoder`.
    """

    out_shape: tuple[int, int, int]
    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 2
    res_hidden: int | None = None
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h: Array) -> Array:
        H, W, c_out = self.out_shape
        levels = len(self.channels)
        hs, ws = downsampled_sizes(H, levels), downsampled_sizes(W, levels)
        if h.shape[1:3] != (hs[-1], ws[-1]):
            raise ValueError(f"ConvDecoder: expected maps of size {(hs[-1], ws[-1])} for output "
                             f"{self.out_shape}, got shape {h.shape}.")
        h = nn.Conv(self.channels[-1], (3, 3), padding="SAME", dtype=self.dtype, name="mid")(
            h.astype(self.dtype))
        h = ResidualStack(self.num_res_blocks, self.res_hidden or self.channels[-1],
                          self.activation, self.dtype, name="res")(h)
        outs = [*reversed(self.channels[:-1]), c_out]
        for i, c in enumerate(outs):
            h = nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                                 name=f"up_{i}")(h)
            level = levels - 1 - i
            h = h[:, :hs[level], :ws[level]]
            if i < len(outs) - 1:
                h = self.activation(h)
        return h.astype(jnp.float32)
