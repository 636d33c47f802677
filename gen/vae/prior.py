"""An autoregressive PixelCNN prior over a grid of discrete codes (the VQ-VAE's second stage).

``p(c) = prod_i p(c_i | c_<i)`` in raster order over an ``(h, w)`` grid of codes in
``{0, ..., K-1}``. The network has PixelCNN++'s two stacks without blind spot (Salimans et al.
2017, from van den Oord et al. 2016's gated PixelCNN), with plain residual blocks: a *vertical*
stack ``u`` whose output at row r sees only rows above r (convolutions padded at the top and
shifted down one row), and a *horizontal* stack ``ul`` whose output at (r, c) sees the row to
its left (padded at the left and shifted right one column) and, through ``u``, every row above.
Training is one parallel pass (teacher forcing); sampling runs ``h w`` passes in a
``lax.fori_loop``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def shift_down(x: Array) -> Array:
    """``(N, H, W, C)`` moved one row down, zeros in the first row."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def shift_right(x: Array) -> Array:
    """``(N, H, W, C)`` moved one column right, zeros in the first column."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class ShiftedConv(nn.Module):
    """A ``(kh, kw)`` convolution whose output at (r, c) sees rows ``r-kh+1..r`` and columns
    ``c-(kw-1)/2..c+(kw-1)/2`` (``down``), or columns ``c-kw+1..c`` (``down_right``)."""

    features: int
    kernel: tuple[int, int]
    down_right: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kh, kw = self.kernel
        cols = (kw - 1, 0) if self.down_right else ((kw - 1) // 2, (kw - 1) // 2)
        x = jnp.pad(x, ((0, 0), (kh - 1, 0), cols, (0, 0)))
        return nn.Conv(self.features, (kh, kw), padding="VALID", dtype=self.dtype)(x)


class PixelCNNPrior(nn.Module):
    """``codes (N, h, w) -> logits (N, h, w, K)``, each position's from the codes before it.

    Attributes:
      num_codes: K.
      features: channels of both stacks.
      num_layers: residual blocks per stack.
      num_classes: labels, when given, are added to both stacks as an embedding.
    """

    num_codes: int
    features: int = 64
    num_layers: int = 4
    num_classes: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, codes: Array, y: Array | None = None) -> Array:
        F, act = self.features, nn.relu
        h = nn.Embed(self.num_codes, F, name="embed")(codes).astype(self.dtype)
        u = shift_down(ShiftedConv(F, (2, 3), dtype=self.dtype, name="u_in")(h))
        ul = (shift_down(ShiftedConv(F, (1, 3), dtype=self.dtype, name="ul_in_up")(h))
              + shift_right(ShiftedConv(F, (2, 1), True, self.dtype, name="ul_in_left")(h)))
        if self.num_classes is not None and y is not None:
            label = nn.Embed(self.num_classes, F, name="label")(y)[:, None, None]
            u, ul = u + label, ul + label
        for i in range(self.num_layers):
            u = u + ShiftedConv(F, (2, 3), dtype=self.dtype, name=f"u_{i}")(act(u))
            ul = (ul + ShiftedConv(F, (2, 2), True, self.dtype, name=f"ul_{i}")(act(ul))
                  + nn.Dense(F, dtype=self.dtype, name=f"link_{i}")(act(u)))
        h = act(nn.Dense(F, dtype=self.dtype, name="out_hidden")(act(ul)))
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
