"""The ResNet generator and discriminator of SNGAN and WGAN-GP for 32x32 images.

As in Miyato et al. (2018, Appendix B.4, Table 4) and mimicry's ``ResNetGenerator32`` /
``ResNetDiscriminator32`` (the networks of its CIFAR-10 table), which Gulrajani et al. (2017,
Appendix F) also used:

- generator: ``z (128) -> Dense(4 x 4 x ngf)``, three up-sampling blocks (``ngf`` channels,
  4 -> 8 -> 16 -> 32), BatchNorm, ReLU, 3x3 conv to ``C``, ``tanh``. A block is
  ``BN, ReLU, up x2, conv3x3, BN, ReLU, conv3x3`` plus a shortcut ``up x2, conv1x1``;
  with ``num_classes`` the BatchNorms are class-conditional.
- discriminator: an "optimized" first block (``conv3x3, ReLU, conv3x3, avgpool`` plus
  ``avgpool, conv1x1``), one down-sampling block and two plain blocks of ``ndf`` channels
  (``ReLU, conv3x3, ReLU, conv3x3[, avgpool]``, shortcut ``conv1x1[, avgpool]`` where the
  shape changes), ReLU, a sum over positions, a linear output, and a projection term with
  ``num_classes``. SNGAN normalizes every layer spectrally; WGAN-GP uses none.

Defaults ``ngf=256``, ``ndf=128`` are mimicry's. Up-sampling is nearest-neighbour.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.gan.conditional import ConditionalBatchNorm, Projection
from gen.gan.layers import Conv, Dense

Array = jax.Array
XAVIER = nn.initializers.xavier_uniform()
XAVIER_RELU = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")  # gain sqrt(2)


def _upsample(x: Array) -> Array:
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avgpool(x: Array) -> Array:
    return nn.avg_pool(x, (2, 2), (2, 2))


class GBlock(nn.Module):
    ch: int
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, labels: Array | None, train: bool) -> Array:
        conv = lambda k, init: nn.Conv(self.ch, (k, k), padding="SAME", kernel_init=init,
                                       dtype=self.dtype)
        h = nn.relu(ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(x, labels, train))
        h = conv(3, XAVIER_RELU)(_upsample(h))
        h = nn.relu(ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(h, labels, train))
        h = conv(3, XAVIER_RELU)(h)
        return h + conv(1, XAVIER)(_upsample(x))


class DBlock(nn.Module):
    ch: int
    downsample: bool
    optimized: bool = False  # the first block: no ReLU before its first conv, pool first
    spectral_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, update_stats: bool) -> Array:
        conv = lambda k, init: Conv(self.ch, (k, k), spectral_norm=self.spectral_norm,
                                    kernel_init=init, dtype=self.dtype)
        h = x if self.optimized else nn.relu(x)
        h = conv(3, XAVIER_RELU)(h, update_stats)
        h = conv(3, XAVIER_RELU)(nn.relu(h), update_stats)
        if self.downsample:
            h = _avgpool(h)
        if self.optimized:
            return h + conv(1, XAVIER)(_avgpool(x), update_stats)
        if self.downsample or x.shape[-1] != self.ch:
            s = conv(1, XAVIER)(x, update_stats)
            return h + (_avgpool(s) if self.downsample else s)
        return h + x


class ResNetGenerator(nn.Module):
    """``z (B, latent) -> images (B, 32, 32, C)`` in [-1, 1] (4x4 base, three blocks)."""

    shape: tuple[int, int, int] = (32, 32, 3)
    ngf: int = 256
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z: Array, labels: Array | None = None, train: bool = False) -> Array:
        h_out, w_out, c_out = self.shape
        h0, w0 = h_out // 8, w_out // 8
        h = nn.Dense(h0 * w0 * self.ngf, kernel_init=XAVIER, dtype=self.dtype)(
            z.astype(self.dtype or z.dtype))
        h = h.reshape(z.shape[0], h0, w0, self.ngf)
        for _ in range(3):
            h = GBlock(self.ngf, self.num_classes, self.dtype)(h, labels, train)
        h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                 dtype=self.dtype)(h))
        h = nn.Conv(c_out, (3, 3), padding="SAME", kernel_init=XAVIER, dtype=self.dtype)(h)
        return jnp.tanh(h.astype(jnp.float32))


class ResNetDiscriminator(nn.Module):
    """``images (B, H, W, C) -> (B,)`` logits."""

    ndf: int = 128
    spectral_norm: bool = True
    num_classes: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None,
                 update_stats: bool = False) -> Array:
        kw = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        h = x.astype(self.dtype or x.dtype)
        h = DBlock(self.ndf, downsample=True, optimized=True, **kw)(h, update_stats)
        h = DBlock(self.ndf, downsample=True, **kw)(h, update_stats)
        h = DBlock(self.ndf, downsample=False, **kw)(h, update_stats)
        h = DBlock(self.ndf, downsample=False, **kw)(h, update_stats)
        h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
        out = Dense(1, self.spectral_norm, kernel_init=XAVIER)(h, update_stats)[..., 0]
        if self.num_classes is not None:
            out = out + Projection(self.num_classes, self.spectral_norm)(h, labels, update_stats)
        return out.astype(jnp.float32)
