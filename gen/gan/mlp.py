"""MLP generator and discriminator for vectors (toy 2-D data, any ``(N, D)`` array).

The defaults follow PacGAN's 2-D experiments (Lin et al. 2018, appendix; the code of VEEGAN's
grid and ring): a generator of four ReLU layers of 400 units with BatchNorm, and a
discriminator of three hidden layers of 200 units, maxout with 5 pieces or leaky ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.gan.conditional import ConditionalBatchNorm, Projection
from gen.gan.layers import Dense

Array = jax.Array


class MLPGenerator(nn.Module):
    """``z (B, latent) -> x (B, out_dim)``; ReLU layers, BatchNorm (class-conditional with
    ``num_classes``) unless ``batchnorm=False``, a linear output."""

    out_dim: int
    hidden: Sequence[int] = (400, 400, 400, 400)
    batchnorm: bool = True
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z: Array, labels: Array | None = None, train: bool = False) -> Array:
        h = z.astype(self.dtype or z.dtype)
        if self.num_classes is not None and not self.batchnorm:
            h = jnp.concatenate([h, nn.Embed(self.num_classes, 16)(labels).astype(h.dtype)], -1)
        for width in self.hidden:
            h = nn.Dense(width, use_bias=not self.batchnorm, dtype=self.dtype)(h)
            if self.batchnorm:
                h = ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(h, labels, train)
            h = nn.relu(h)
        return nn.Dense(self.out_dim, dtype=self.dtype)(h).astype(jnp.float32)


class MLPDiscriminator(nn.Module):
    """``x (B, D) -> (B,)`` logits; hidden layers with ``activation`` ``"maxout"`` (``pieces``
    linear pieces per unit) or ``"leaky_relu"`` (slope 0.2); a projection term with
    ``num_classes``; every layer spectrally normalized with ``spectral_norm``.

    With ``fourier_features = F > 0`` the input first becomes ``[sin 2 pi x W, cos 2 pi x W]``,
    ``W (D, F)`` learned, initialized ``N(0, fourier_scale^2)`` (Tancik et al. 2020): an MLP on
    low-dimensional inputs is biased toward smooth functions, and these features let the
    discriminator tell tight modes (std 0.05 on a grid of spacing 2) from a blur around them
    within thousands of steps instead of hundreds of thousands.
    """

    hidden: Sequence[int] = (200, 200, 200)
    activation: str = "leaky_relu"
    pieces: int = 5
    spectral_norm: bool = False
    num_classes: int | None = None
    dtype: Any = None
    fourier_features: int = 0
    fourier_scale: float = 1.0
    packing: int = 1  # the members of a packed input get their own features, one shared ``W``

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None,
                 update_stats: bool = False) -> Array:
        h = x.astype(self.dtype or x.dtype)
        if self.fourier_features:
            members = x.reshape(*x.shape[:-1], self.packing, x.shape[-1] // self.packing)
            w = self.param("fourier", nn.initializers.normal(self.fourier_scale),
                           (members.shape[-1], self.fourier_features))
            angles = 2 * jnp.pi * (members.astype(jnp.float32) @ w)
            h = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1)
            h = h.reshape(*x.shape[:-1], -1).astype(self.dtype or x.dtype)
        for width in self.hidden:
            if self.activation == "maxout":
                h = Dense(width * self.pieces, self.spectral_norm, dtype=self.dtype)(
                    h, update_stats)
                h = jnp.max(h.reshape(*h.shape[:-1], width, self.pieces), axis=-1)
            else:
                h = nn.leaky_relu(Dense(width, self.spectral_norm, dtype=self.dtype)(
                    h, update_stats), 0.2)
        out = Dense(1, self.spectral_norm, dtype=self.dtype)(h, update_stats)[..., 0]
        out = out.astype(jnp.float32)
        if self.num_classes is not None:
            out = out + Projection(self.num_classes, self.spectral_norm)(h, labels, update_stats)
        return out
