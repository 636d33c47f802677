"""An autoregressive PixelCNN prior over a grid of discrete codes (the VQ-VAE's second stage).

``p(c) = prod_i p(c_i | c_<i)`` in raster order over an ``(h, w)`` grid of codes in
``{0, ..., K-1}``. The network (van den Oord et al. 2016's PixelCNN, without gating) embeds the
codes, applies one 5x5 convolution masked to the pixels strictly before the centre (mask A),
residual blocks of 3x3 convolutions masked to the centre and before (mask B), and 1x1
convolutions to K logits per position. Training is one parallel pass (teacher forcing);
sampling runs ``h w`` passes in a ``lax.fori_loop``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def causal_mask(size: int, include_centre: bool) -> np.ndarray:
    """A ``(size, size)`` 0/1 mask of the positions before the centre in raster order."""
    mask = np.zeros((size, size), np.float32)
    c = size // 2
    mask[:c] = 1.0
    mask[c, :c + (1 if include_centre else 0)] = 1.0
    return mask


class MaskedConv(nn.Module):
    """A SAME-padded convolution whose kernel sees only the causal half (mask A or B)."""

    features: int
    size: int
    include_centre: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.size, self.size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        mask = jnp.asarray(causal_mask(self.size, self.include_centre))[:, :, None, None]
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), (kernel * mask).astype(self.dtype), (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias.astype(self.dtype)


class PixelCNNPrior(nn.Module):
    """``codes (N, h, w) -> logits (N, h, w, K)``, each position's from the codes before it.

    Attributes:
      num_codes: K.
      features: channels of the hidden layers.
      num_layers: residual blocks with mask B.
      num_classes: labels, when given, are added to the hidden features as an embedding.
    """

    num_codes: int
    features: int = 64
    num_layers: int = 4
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, codes: Array, y: Array | None = None) -> Array:
        h = nn.Embed(self.num_codes, self.features, name="embed")(codes).astype(self.dtype)
        h = MaskedConv(self.features, 5, False, self.dtype, name="conv_a")(h)
        if self.num_classes is not None and y is not None:
            h = h + nn.Embed(self.num_classes, self.features, name="label")(y)[:, None, None]
        for i in range(self.num_layers):
            r = MaskedConv(self.features, 3, True, self.dtype, name=f"block_{i}_conv")(
                nn.relu(h))
            r = nn.Dense(self.features, dtype=self.dtype, name=f"block_{i}_proj")(nn.relu(r))
            h = h + r
        h = nn.relu(nn.Dense(self.features, dtype=self.dtype, name="out_hidden")(nn.relu(h)))
        return nn.Dense(self.num_codes, dtype=self.dtype, name="out")(h).astype(jnp.float32)


def code_log_prob(logits: Array, codes: Array) -> Array:
    """``log p(codes)`` per example: the log-softmax at each code, summed over the grid."""
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits), codes[..., None], axis=-1)[..., 0]
    return jnp.sum(lp, axis=(-2, -1))


def sample_codes(apply, key: Array, num: int, grid: tuple[int, int]) -> Array:
    """``num`` code grids drawn from ``apply(codes) -> logits`` in raster order."""
    h, w = grid

    def body(i, codes):
        r, c = i // w, i % w
        logits = apply(codes)[:, r, c]
        draw = jax.random.categorical(jax.random.fold_in(key, i), logits)
        return codes.at[:, r, c].set(draw.astype(codes.dtype))

    return jax.lax.fori_loop(0, h * w, body, jnp.zeros((num, h, w), jnp.int32))
