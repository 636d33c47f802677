"""Self-attention over the pixels of a feature map, the block of the DDPM UNet.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.attention import AttentionBlock
    >>> block = AttentionBlock(num_heads=2, num_groups=4)
    >>> x = jnp.ones((2, 4, 4, 8))
    >>> params = block.init(jax.random.key(0), x)
    >>> block.apply(params, x).shape
    (2, 4, 4, 8)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

#: DDPM's initializer: variance scaling, fan_avg, uniform (TF's glorot_uniform).
default_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


class AttentionBlock(nn.Module):
    """``x + proj_out(attention(GroupNorm(x)))`` over the ``H * W`` positions of each example.

    As in DDPM's ``attn_block``: 1x1 (dense) q, k, v projections of width ``C``, logits scaled
    by ``head_dim ** -0.5``, a softmax over all positions, and a zero-initialized output
    projection, so the block is the identity at init. ``num_heads=1`` is DDPM's single head;
    the parameter count does not depend on ``num_heads``. There is no positional term: the
    block is equivariant to permutations of the pixels.

    Attributes:
      num_heads: number of heads; must divide the channel count ``C``.
      num_groups: GroupNorm groups; must divide ``C``.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); params stay float32, and the softmax runs in
        float32. The output has the input's dtype.
    """

    num_heads: int = 1
    num_groups: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4:
            raise ValueError(f"AttentionBlock: expected (B, H, W, C), got shape {x.shape}.")
        B, H, W, C = x.shape
        if C % self.num_heads:
            raise ValueError(
                f"AttentionBlock: num_heads={self.num_heads} must divide the channels C={C}."
            )
        if C % self.num_groups:
            raise ValueError(
                f"AttentionBlock: num_groups={self.num_groups} must divide the channels C={C}."
            )
        heads, head_dim = self.num_heads, C // self.num_heads

        h = nn.GroupNorm(self.num_groups, dtype=self.dtype, use_fast_variance=False, name="norm")(x)

        def dense(name: str, init: nn.initializers.Initializer = default_init) -> nn.Dense:
            return nn.Dense(C, dtype=self.dtype, kernel_init=init, name=name)

        q, k, v = (dense(n)(h).reshape(B, H * W, heads, head_dim) for n in ("q", "k", "v"))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * head_dim**-0.5
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(B, H, W, C)
        out = dense("proj_out", nn.initializers.zeros)(out)
        return (x + out).astype(x.dtype)
