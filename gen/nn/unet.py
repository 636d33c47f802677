"""The DDPM UNet (Ho et al. 2020), the architecture of ``hojonathanho/diffusion``'s ``unet.py``.

Layout, for ``L = len(ch_mult)`` levels::

    temb = Dense(4ch)(swish(Dense(4ch)(embed(t, ch)))) [+ Embed(labels)]
    conv_in (3x3, ch)
    down, per level i:  num_res_blocks x [ResBlock(ch * ch_mult[i]) (+ attention)], downsample
                        (no downsample after the last level); every output is kept as a skip
    middle:             ResBlock, attention, ResBlock
    up, per level i in reverse: (num_res_blocks + 1) x [concat(skip), ResBlock (+ attention)],
                        upsample (not after level 0)
    out:                GroupNorm, swish, conv_out (3x3, out_channels)

A ResBlock is ``x + conv2(dropout(swish(GN(conv1(swish(GN(x))) + Dense(swish(temb))))))``, with
a 1x1 (or 3x3, ``conv_shortcut``) projection of ``x`` when the width changes. Attention runs at
the levels whose spatial size is in ``attn_resolutions`` (and always in the middle).

Initialization follows DDPM: variance scaling (fan_avg, uniform) everywhere, zero biases, and
zeros where DDPM uses ``init_scale=0`` (each ResBlock's ``conv2``, attention's ``proj_out`` and
``conv_out``; DDPM's 1e-10 scale is zero in effect). So the UNet outputs exactly 0 at init.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.unet import UNet
    >>> net = UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), num_groups=4)
    >>> x, t = jnp.zeros((2, 8, 8, 3)), jnp.array([10.0, 500.0])
    >>> params = net.init(jax.random.key(0), x, t)
    >>> net.apply(params, x, t).shape
    (2, 8, 8, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.nn.attention import AttentionBlock, default_init
from gen.nn.embeddings import fourier_features, timestep_embedding

Array = jax.Array
Dtype = Any

TIME_EMBEDDINGS = ("sinusoidal", "fourier")


def _conv(features: int, dtype: Dtype, name: str, zero: bool = False, **kw: Any) -> nn.Conv:
    init = nn.initializers.zeros if zero else default_init
    return nn.Conv(features, (3, 3), dtype=dtype, kernel_init=init, name=name, **kw)


def _norm(num_groups: int, dtype: Dtype, name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups, dtype=dtype, use_fast_variance=False, name=name)


class ResBlock(nn.Module):
    """DDPM's ``resnet_block``: two GroupNorm-swish-conv layers, the time embedding added between.

    Attributes:
      out_ch: output channels (default: the input's).
      dropout: dropout rate before the second conv, active only with ``train=True``.
      num_groups: GroupNorm groups.
      conv_shortcut: project the skip with a 3x3 conv instead of a 1x1 when widths differ.
      dtype: compute dtype.
    """

    out_ch: int | None = None
    dropout: float = 0.0
    num_groups: int = 32
    conv_shortcut: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, temb: Array, train: bool = False) -> Array:
        C = x.shape[-1]
        out_ch = self.out_ch or C
        h = _conv(out_ch, self.dtype, "conv1")(
            nn.swish(_norm(self.num_groups, self.dtype, "norm1")(x))
        )
        temb = nn.Dense(out_ch, dtype=self.dtype, kernel_init=default_init, name="temb_proj")(
            nn.swish(temb)
        )
        h = h + temb[:, None, None, :]
        h = nn.swish(_norm(self.num_groups, self.dtype, "norm2")(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = _conv(out_ch, self.dtype, "conv2", zero=True)(h)
        if C != out_ch:
            if self.conv_shortcut:
                x = _conv(out_ch, self.dtype, "conv_shortcut")(x)
            else:
                x = nn.Dense(
                    out_ch, dtype=self.dtype, kernel_init=default_init, name="nin_shortcut"
                )(x)
        return x + h


class UNet(nn.Module):
    """The DDPM UNet: ``apply(params, x, t_input, labels=None, train=False, rngs=...)``.

    Call: ``x`` (B, H, W, C) float, with H and W divisible by ``2 ** (len(ch_mult) - 1)``;
    ``t_input`` (B,) or a scalar, float, fed as is into the time embedding (DDPM feeds integer
    steps 0..999: scale continuous t in [0, 1] yourself, e.g. ``1000 * t``; for the ``"fourier"``
    embedding feed e.g. ``log(sigma)``); ``labels`` (B,) int or None, in ``[0, num_classes)``
    (``[0, num_classes]`` with ``null_class``; values are not checked, as they may be traced: an
    index past the end gives NaN, jnp.take's fill mode); ``train`` turns dropout on, which then
    needs ``rngs={"dropout": key}``. Returns float32 (B, H, W, out_channels).

    Attributes:
      ch: base width; level i has ``ch * ch_mult[i]`` channels, the time embedding ``4 * ch``.
      ch_mult: width multipliers, one per resolution level.
      num_res_blocks: ResBlocks per level on the way down (``+ 1`` on the way up).
      attn_resolutions: spatial sizes (height) at which ResBlocks are followed by attention.
      dropout: dropout rate inside the ResBlocks.
      num_groups: GroupNorm groups; must divide ``ch`` (every width is a multiple of ``ch``).
      out_channels: output channels (default: the input's).
      resamp_with_conv: downsample with a stride-2 conv (else 2x2 average pooling) and follow
        the nearest-neighbour upsampling with a conv.
      num_heads: attention heads (DDPM: 1).
      num_classes: class-conditional with this many classes (adds an embedding of labels to
        the time embedding); None is unconditional.
      null_class: add one more embedding row, index ``num_classes``, the "null" label of
        classifier-free guidance; then ``labels=None`` means all-null. Dropping labels to it
        during training is the caller's business.
      time_embedding: ``"sinusoidal"`` (DDPM) or ``"fourier"`` (random Fourier features,
        score_sde/EDM style, for continuous noise levels).
      dtype: compute dtype, e.g. ``jnp.bfloat16``; params stay float32 and the output is float32.
    """

    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    dropout: float = 0.0
    num_groups: int = 32
    out_channels: int | None = None
    resamp_with_conv: bool = True
    num_heads: int = 1
    num_classes: int | None = None
    null_class: bool = False
    time_embedding: str = "sinusoidal"
    dtype: Dtype = jnp.float32

    @property
    def null_label(self) -> int:
        """The label index of the "null" class (needs ``null_class=True``)."""
        if self.num_classes is None or not self.null_class:
            raise ValueError(
                "UNet.null_label: build the UNet with num_classes and null_class=True."
            )
        return self.num_classes

    def _check(self, x: Array) -> None:
        if x.ndim != 4:
            raise ValueError(f"UNet: expected x of shape (B, H, W, C), got shape {x.shape}.")
        factor = 2 ** (len(self.ch_mult) - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"UNet: H and W must be divisible by 2**(len(ch_mult) - 1) = {factor} for "
                f"ch_mult={tuple(self.ch_mult)}, got spatial shape {x.shape[1:3]}."
            )
        if self.ch % self.num_groups:
            raise ValueError(f"UNet: num_groups={self.num_groups} must divide ch={self.ch}.")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"UNet: unknown time_embedding {self.time_embedding!r}; use one of "
                f"{TIME_EMBEDDINGS}."
            )

    def _embed(self, t_input: Array, labels: Array | None, batch: int) -> Array:
        t = jnp.asarray(t_input)
        if t.ndim == 0:
            t = jnp.broadcast_to(t, (batch,))
        if t.shape != (batch,):
            raise ValueError(f"UNet: t_input must have shape ({batch},) or (), got {t.shape}.")
        if self.time_embedding == "sinusoidal":
            temb = timestep_embedding(t, self.ch)
        else:
            temb = fourier_features(t, self.ch)
        temb = nn.Dense(
            4 * self.ch, dtype=self.dtype, kernel_init=default_init, name="temb_dense0"
        )(temb)
        temb = nn.Dense(
            4 * self.ch, dtype=self.dtype, kernel_init=default_init, name="temb_dense1"
        )(nn.swish(temb))
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("UNet: got labels, but the UNet was built with num_classes=None.")
            return temb
        if labels is None:
            if not self.null_class:
                raise ValueError(
                    "UNet: this UNet is class-conditional (num_classes="
                    f"{self.num_classes}) and needs labels; build it with null_class=True to "
                    "allow labels=None (the null label)."
                )
            labels = jnp.full((batch,), self.num_classes, jnp.int32)
        labels = jnp.asarray(labels)
        if labels.shape != (batch,) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(
                f"UNet: labels must be integers of shape ({batch},), got {labels.dtype} "
                f"{labels.shape}."
            )
        rows = self.num_classes + int(self.null_class)
        return temb + nn.Embed(rows, 4 * self.ch, dtype=self.dtype, name="label_emb")(labels)

    @nn.compact
    def __call__(
        self, x: Array, t_input: Array, labels: Array | None = None, train: bool = False
    ) -> Array:
        self._check(x)
        B, _, _, C = x.shape
        out_channels = self.out_channels or C
        temb = self._embed(t_input, labels, B)
        block_kw = dict(dropout=self.dropout, num_groups=self.num_groups, dtype=self.dtype)
        attn_kw = dict(num_heads=self.num_heads, num_groups=self.num_groups, dtype=self.dtype)
        levels = len(self.ch_mult)

        hs = [_conv(self.ch, self.dtype, "conv_in")(x.astype(self.dtype))]
        for i, mult in enumerate(self.ch_mult):
            for j in range(self.num_res_blocks):
                h = ResBlock(self.ch * mult, name=f"down_{i}_block_{j}", **block_kw)(
                    hs[-1], temb, train
                )
                if h.shape[1] in self.attn_resolutions:
                    h = AttentionBlock(name=f"down_{i}_attn_{j}", **attn_kw)(h)
                hs.append(h)
            if i != levels - 1:
                hs.append(self._downsample(hs[-1], f"down_{i}_downsample"))

        h = ResBlock(name="mid_block_1", **block_kw)(hs[-1], temb, train)
        h = AttentionBlock(name="mid_attn_1", **attn_kw)(h)
        h = ResBlock(name="mid_block_2", **block_kw)(h, temb, train)

        for i in reversed(range(levels)):
            for j in range(self.num_res_blocks + 1):
                h = ResBlock(self.ch * self.ch_mult[i], name=f"up_{i}_block_{j}", **block_kw)(
                    jnp.concatenate([h, hs.pop()], axis=-1), temb, train
                )
                if h.shape[1] in self.attn_resolutions:
                    h = AttentionBlock(name=f"up_{i}_attn_{j}", **attn_kw)(h)
            if i != 0:
                h = self._upsample(h, f"up_{i}_upsample")
        assert not hs

        h = nn.swish(_norm(self.num_groups, self.dtype, "norm_out")(h))
        h = _conv(out_channels, self.dtype, "conv_out", zero=True)(h)
        return h.astype(jnp.float32)

    def _downsample(self, x: Array, name: str) -> Array:
        if self.resamp_with_conv:  # TF "SAME" at stride 2 pads (0, 1), as in DDPM
            return _conv(x.shape[-1], self.dtype, name, strides=(2, 2), padding="SAME")(x)
        return nn.avg_pool(x, (2, 2), strides=(2, 2))

    def _upsample(self, x: Array, name: str) -> Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest neighbour
        if self.resamp_with_conv:
            x = _conv(x.shape[-1], self.dtype, name)(x)
        return x


def cifar10_config() -> dict[str, Any]:
    """Ho et al. 2020's CIFAR-10 UNet (35.7M params): ``UNet(**cifar10_config())``.

    ch=128, ch_mult=(1, 2, 2, 2), two ResBlocks per level, attention at 16x16, dropout 0.1,
    32 GroupNorm groups, convolutional resampling (``hojonathanho/diffusion``,
    ``scripts/run_cifar.py``).
    """
    return dict(
        ch=128,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attn_resolutions=(16,),
        dropout=0.1,
        num_groups=32,
        resamp_with_conv=True,
    )


def count_params(params: Any) -> int:
    """Total number of scalars in a params pytree (works on ``jax.eval_shape`` outputs)."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
