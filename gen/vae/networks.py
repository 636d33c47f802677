"""The VAE's networks: Gaussian encoders and likelihood decoders, MLP or convolutional.

- ``GaussianMLP``: ``x -> (mean, log_std)`` of a diagonal Gaussian through an MLP. It is the
  encoder ``q(z | x)`` of the MLP VAE (images flattened) and each stochastic layer of Burda et
  al.'s two-layer model (``q(z2 | z1)``, ``p(z1 | z2)``).
- ``MLPDecoder``: ``z -> `` the likelihood's parameters ``(N, *param_shape)``.
- ``ConvGaussianEncoder`` / ``ConvDecoderHead``: ``gen.nn.ConvEncoder`` / ``ConvDecoder`` with a
  dense layer between the feature map and the latent vector.

Labels (``num_classes``) make them conditional: a one-hot ``y`` is concatenated to the input of
an MLP, to the image as constant channels of a conv encoder, and to ``z`` of a conv decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen.nn.autoencoder import ConvDecoder, ConvEncoder, downsampled_sizes

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu, "softplus": nn.softplus, "elu": nn.elu,
}


def _with_labels(h: Array, y: Array | None, num_classes: int | None) -> Array:
    if num_classes is None:
        return h
    if y is None:
        raise ValueError("a conditional network needs labels y.")
    onehot = jax.nn.one_hot(y, num_classes, dtype=h.dtype)
    return jnp.concatenate([h, jnp.broadcast_to(onehot, (*h.shape[:-1], num_classes))], -1)


class GaussianMLP(nn.Module):
    """``(N, ...) -> (mean, log_std)``, each ``(N, out_dim)``: dense layers of ``hidden``."""

    out_dim: int
    hidden: Sequence[int] = (200, 200)
    activation: str = "tanh"
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, y: Array | None = None) -> tuple[Array, Array]:
        h = _with_labels(x.reshape(x.shape[0], -1).astype(self.dtype), y, self.num_classes)
        act = ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, dtype=self.dtype, name=f"Dense_{i}")(h))
        out = nn.Dense(2 * self.out_dim, dtype=self.dtype, name="out")(h).astype(jnp.float32)
        return out[:, :self.out_dim], out[:, self.out_dim:]


class MLPDecoder(nn.Module):
    """``z (N, d) -> (N, *param_shape)`` likelihood parameters through dense layers."""

    param_shape: tuple[int, ...]
    hidden: Sequence[int] = (200, 200)
    activation: str = "tanh"
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: Array, y: Array | None = None) -> Array:
        h = _with_labels(z.astype(self.dtype), y, self.num_classes)
        act = ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, dtype=self.dtype, name=f"Dense_{i}")(h))
        out = nn.Dense(int(np.prod(self.param_shape)), dtype=self.dtype, name="out")(h)
        return out.astype(jnp.float32).reshape(z.shape[0], *self.param_shape)


class ConvGaussianEncoder(nn.Module):
    """Images ``(N, H, W, C) -> (mean, log_std)`` of ``latent_dim``: conv stack, then dense."""

    latent_dim: int
    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 1
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, y: Array | None = None) -> tuple[Array, Array]:
        h = _with_labels(x.astype(self.dtype), None if y is None else y[:, None, None],
                         self.num_classes)
        h = ConvEncoder(self.channels, self.num_res_blocks, dtype=self.dtype, name="conv")(h)
        out = nn.Dense(2 * self.latent_dim, dtype=self.dtype, name="out")(
            h.reshape(h.shape[0], -1)).astype(jnp.float32)
        return out[:, :self.latent_dim], out[:, self.latent_dim:]


class ConvDecoderHead(nn.Module):
    """``z (N, d) -> (N, H, W, P)`` likelihood parameters: dense to a map, then a conv stack."""

    param_shape: tuple[int, int, int]
    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 1
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: Array, y: Array | None = None) -> Array:
        H, W, _ = self.param_shape
        h_, w_ = (downsampled_sizes(s, len(self.channels))[-1] for s in (H, W))
        h = _with_labels(z.astype(self.dtype), y, self.num_classes)
        h = nn.relu(nn.Dense(h_ * w_ * self.channels[-1], dtype=self.dtype, name="in")(h))
        h = h.reshape(z.shape[0], h_, w_, self.channels[-1])
        return ConvDecoder(self.param_shape, self.channels, self.num_res_blocks, dtype=self.dtype,
                           name="conv")(h)
