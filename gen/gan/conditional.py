"""Class conditioning: class-conditional BatchNorm for the generator and the projection
discriminator's output (Miyato & Koyama 2018).

**Conditional BatchNorm** (de Vries et al. 2017; Miyato & Koyama 2018): BatchNorm without its own
scale and offset, then a per-class scale and offset, ``gamma_y * BN(h) + beta_y``, with
``gamma`` initialized to ones and ``beta`` to zeros. Without classes it is plain BatchNorm.

**Projection**: for features ``phi(x)`` (B, C) the discriminator outputs
``psi(phi(x)) + <embed(y), phi(x)>``, the inner product with a learned class embedding (the
log-density ratio of the two class-conditional distributions under their model).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.gan.spectral_norm import SNEmbed

Array = jax.Array
BN_MOMENTUM = 0.9  # PyTorch's 0.1 update rate: running = 0.9 running + 0.1 batch


class ConditionalBatchNorm(nn.Module):
    """``gamma_y * BN(h) + beta_y`` over the last axis; plain BatchNorm when ``num_classes`` is
    ``None``. Running statistics live in the ``batch_stats`` collection."""

    num_classes: int | None = None
    momentum: float = BN_MOMENTUM
    dtype: Any = None

    @nn.compact
    def __call__(self, h: Array, labels: Array | None, train: bool) -> Array:
        if self.num_classes is None:
            return nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                                dtype=self.dtype)(h)
        if labels is None:
            raise ValueError("a class-conditional generator needs labels.")
        h = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                         use_scale=False, use_bias=False, dtype=self.dtype)(h)
        features = h.shape[-1]
        gamma = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones,
                         name="gamma")(labels)
        beta = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                        name="beta")(labels)
        expand = (slice(None),) + (None,) * (h.ndim - 2) + (slice(None),)
        return h * gamma[expand].astype(h.dtype) + beta[expand].astype(h.dtype)


class Projection(nn.Module):
    """``<embed(y), features>`` (B,), spectrally normalized embedding when ``spectral_norm``."""

    num_classes: int
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, features: Array, labels: Array, update_stats: bool = False) -> Array:
        if labels is None:
            raise ValueError("a projection discriminator needs labels.")
        if self.spectral_norm:
            embed = SNEmbed(self.num_classes, features.shape[-1], name="embed")(labels,
                                                                               update_stats)
        else:
            embed = nn.Embed(self.num_classes, features.shape[-1],
                             embedding_init=nn.initializers.xavier_uniform(),
                             name="embed")(labels)
        return jnp.sum(embed.astype(jnp.float32) * features.astype(jnp.float32), axis=-1)
