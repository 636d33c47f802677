"""What the image bijectors share: the event check and dtype helpers."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from gen.flows.bijector import Array

Shape3 = tuple[int, int, int]
Conditioner = Callable[[int], nn.Module]
"""``make(out_channels) -> Linen module`` called as ``net(x, context)``, ``x`` of shape
``(H, W, C_in)`` and ``context`` a vector ``(D,)``, a map ``(H, W, D)`` or ``None``."""


def _float(x: Array) -> Array:
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, jnp.float32))


def _zero(x: Array) -> Array:
    return jnp.zeros((), jnp.result_type(x.dtype, jnp.float32))


def _check_image(x: Array, name: str, channels: int | None = None) -> None:
    """``ValueError`` naming both shapes unless ``x`` is one ``(H, W, channels)`` image."""
    shape = tuple(jnp.shape(x))
    if len(shape) != 3 or (channels is not None and shape[-1] != channels):
        expected = "(H, W, C)" if channels is None else f"(H, W, {channels})"
        raise ValueError(
            f"{name}: expected one event of shape {expected}, got shape {shape}. Image "
            "bijectors act on a single (H, W, C) image; map batches with jax.vmap."
        )
