"""A residual MLP denoiser for vector data (toy 2-D densities, small embeddings).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.denoiser import MLPDenoiser
    >>> net = MLPDenoiser(width=64, num_blocks=2)
    >>> x, t = jnp.zeros((5, 2)), jnp.full((5,), 250.0)
    >>> params = net.init(jax.random.key(0), x, t)
    >>> net.apply(params, x, t).shape
    (5, 2)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.nn.embeddings import fourier_features, timestep_embedding

Array = jax.Array
Dtype = Any


class MLPDenoiser(nn.Module):
    """``apply(params, x_t, t_input, labels=None, train=False) -> (..., D)``.

    Layout::

        emb = Dense(width)(swish(Dense(width)(embed(t_input, emb_dim)))) [+ Embed(labels)]
        h = Dense(width)(x_t)
        num_blocks x: h = h + Dense(width)(dropout(swish(Dense(hidden)(swish(LN(h))) + Dense(emb))))
        out = Dense(D)(swish(LN(h)))

    Shapes are rank-polymorphic: ``x_t`` is ``(..., D)`` and ``t_input`` (and ``labels``) have
    the leading shape ``...`` or are scalars, so it works on a batch ``(B, D)`` with ``(B,)``
    times and on one example ``(D,)`` with a scalar time. LayerNorm is per example. Labels lie
    in ``[0, num_classes)`` (``[0, num_classes]`` with ``null_class``); they are not checked
    (they may be traced), and an index past the end gives NaN.

    The output layer is zero-initialized by default (``zero_init_out=True``), like DDPM's
    ``conv_out``: the network outputs exactly 0 at init, and its first gradient step only moves
    the output layer. Set ``zero_init_out=False`` for a LeCun-normal output layer.

    Attributes:
      width: residual stream width.
      num_blocks: residual blocks.
      hidden: width inside each block (default ``2 * width``).
      emb_dim: size of the time embedding before its MLP.
      out_features: output size (default: ``D``, the input's).
      num_classes: class-conditional with this many classes; None is unconditional.
      null_class: one more label row, index ``num_classes``, the classifier-free guidance null
        label; then ``labels=None`` means all-null.
      time_embedding: ``"sinusoidal"`` (feed DDPM-scale times, e.g. ``1000 * t``) or
        ``"fourier"`` (feed continuous t or ``log(sigma)``).
      dropout: dropout rate inside the blocks, on only with ``train=True`` (rng ``"dropout"``).
      zero_init_out: zero-initialize the output layer.
      dtype: compute dtype; params are float32 and the output is float32.
    """

    width: int = 256
    num_blocks: int = 3
    hidden: int | None = None
    emb_dim: int = 128
    out_features: int | None = None
    num_classes: int | None = None
    null_class: bool = False
    time_embedding: str = "sinusoidal"
    dropout: float = 0.0
    zero_init_out: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: Array, t_input: Array, labels: Array | None = None, train: bool = False
    ) -> Array:
        x = jnp.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"MLPDenoiser: expected x of shape (..., D), got shape {x.shape}.")
        lead = x.shape[:-1]
        t = jnp.asarray(t_input)
        if t.shape not in ((), lead):
            raise ValueError(
                f"MLPDenoiser: t_input must have shape {lead} (x's leading shape) or (), got "
                f"{t.shape}."
            )
        t = jnp.broadcast_to(t, lead)
        if self.time_embedding == "sinusoidal":
            emb = timestep_embedding(t, self.emb_dim)
        elif self.time_embedding == "fourier":
            emb = fourier_features(t, self.emb_dim)
        else:
            raise ValueError(
                f"MLPDenoiser: unknown time_embedding {self.time_embedding!r}; use 'sinusoidal' "
                "or 'fourier'."
            )

        def dense(features: int, name: str) -> nn.Dense:
            return nn.Dense(features, dtype=self.dtype, name=name)

        emb = dense(self.width, "emb_dense1")(nn.swish(dense(self.width, "emb_dense0")(emb)))
        emb = emb + self._label_embedding(labels, lead)

        h = dense(self.width, "in")(x.astype(self.dtype))
        for i in range(self.num_blocks):
            r = nn.swish(nn.LayerNorm(dtype=self.dtype, name=f"block_{i}_norm")(h))
            r = dense(self.hidden or 2 * self.width, f"block_{i}_dense0")(r)
            r = r + dense(r.shape[-1], f"block_{i}_emb")(nn.swish(emb))
            r = nn.Dropout(self.dropout, deterministic=not train)(nn.swish(r))
            h = h + dense(self.width, f"block_{i}_dense1")(r)
        h = nn.swish(nn.LayerNorm(dtype=self.dtype, name="out_norm")(h))
        init = nn.initializers.zeros if self.zero_init_out else nn.initializers.lecun_normal()
        out = nn.Dense(
            self.out_features or x.shape[-1], dtype=self.dtype, kernel_init=init, name="out"
        )(h)
        return out.astype(jnp.float32)

    def _label_embedding(self, labels: Array | None, lead: tuple[int, ...]) -> Array | float:
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("MLPDenoiser: got labels, but num_classes is None.")
            return 0.0
        if labels is None:
            if not self.null_class:
                raise ValueError(
                    f"MLPDenoiser: class-conditional (num_classes={self.num_classes}) and "
                    "called without labels; build it with null_class=True to allow labels=None."
                )
            labels = jnp.full(lead, self.num_classes, jnp.int32)
        labels = jnp.asarray(labels)
        if labels.shape not in ((), lead) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(
                f"MLPDenoiser: labels must be integers of shape {lead} or (), got "
                f"{labels.dtype} {labels.shape}."
            )
        rows = self.num_classes + int(self.null_class)
        emb = nn.Embed(rows, self.width, dtype=self.dtype, name="label_emb")
        return emb(jnp.broadcast_to(labels, lead))
