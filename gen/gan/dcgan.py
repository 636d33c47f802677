"""DCGAN (Radford et al. 2016) at small sizes: 8x8 digits, 28x28 MNIST, 32x32 images.

Generator: ``z -> Dense(H/4 * W/4 * 2ch)``, BatchNorm, ReLU, then two stride-2 4x4 transposed
convolutions (``2ch -> ch -> C``), BatchNorm and ReLU between, ``tanh`` out. Discriminator:
two stride-2 4x4 convolutions (``ch``, ``2ch``) with leaky ReLU (0.2), then a linear output.
The discriminator has no BatchNorm (it would couple the examples of a batch, which gradient
penalties and packing assume independent); use ``spectral_norm`` instead where it needs
regularizing. Image sides must be divisible by 4.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.gan.conditional import ConditionalBatchNorm, Projection
from gen.gan.layers import Conv, Dense

Array = jax.Array
INIT = nn.initializers.normal(0.02)  # DCGAN's N(0, 0.02) weights


class DCGANGenerator(nn.Module):
    """``z (B, latent) -> images (B, H, W, C)`` in [-1, 1]."""

    shape: tuple[int, int, int]
    ch: int = 64
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z: Array, labels: Array | None = None, train: bool = False) -> Array:
        h_out, w_out, c_out = self.shape
        h0, w0 = h_out // 4, w_out // 4
        h = nn.Dense(h0 * w0 * 2 * self.ch, use_bias=False, kernel_init=INIT,
                     dtype=self.dtype)(z.astype(self.dtype or z.dtype))
        h = h.reshape(z.shape[0], h0, w0, 2 * self.ch)
        h = nn.relu(ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(h, labels, train))
        h = nn.ConvTranspose(self.ch, (4, 4), (2, 2), padding="SAME", use_bias=False,
                             kernel_init=INIT, dtype=self.dtype)(h)
        h = nn.relu(ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(h, labels, train))
        h = nn.ConvTranspose(c_out, (4, 4), (2, 2), padding="SAME", kernel_init=INIT,
                             dtype=self.dtype)(h)
        return jnp.tanh(h.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
    """``images (B, H, W, C) -> (B,)`` logits."""

    ch: int = 64
    spectral_norm: bool = False
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None,
                 update_stats: bool = False) -> Array:
        h = x.astype(self.dtype or x.dtype)
        for ch in (self.ch, 2 * self.ch):
            h = Conv(ch, (4, 4), (2, 2), self.spectral_norm, kernel_init=INIT,
                     dtype=self.dtype)(h, update_stats)
            h = nn.leaky_relu(h, 0.2)
        h = h.reshape(h.shape[0], -1)
        out = Dense(1, self.spectral_norm, kernel_init=INIT, dtype=self.dtype)(
            h, update_stats)[..., 0].astype(jnp.float32)
        if self.num_classes is not None:
            out = out + Projection(self.num_classes, self.spectral_norm)(h, labels, update_stats)
        return out
