"""PacGAN packing (Lin et al. 2018): the discriminator judges ``m`` samples at once.

A batch of ``B`` examples becomes ``B / m`` packed examples, each the concatenation of ``m``
consecutive examples along the last axis (features for vectors, channels for NHWC images), all
real or all generated. A generator that drops modes makes packs whose members look alike, which
a packed discriminator can tell from real packs; this penalizes mode collapse. ``m = 1`` is a
plain GAN. The discriminator's first layer is ``m`` times wider; nothing else changes.
"""

from __future__ import annotations

import jax

Array = jax.Array


def pack(x: Array, m: int) -> Array:
    """``(B, ..., C) -> (B / m, ..., m C)``: groups of ``m`` consecutive examples side by side."""
    if m == 1:
        return x
    b = x.shape[0]
    if b % m:
        raise ValueError(f"packing {m} samples needs a batch divisible by {m}, got {b}.")
    grouped = x.reshape(b // m, m, *x.shape[1:])
    # (B/m, m, ..., C) -> (B/m, ..., m, C) -> (B/m, ..., m C)
    moved = jax.numpy.moveaxis(grouped, 1, -2)
    return moved.reshape(b // m, *x.shape[1:-1], m * x.shape[-1])
