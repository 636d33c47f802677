"""Embeddings of a per-example scalar (diffusion time, noise level): sinusoidal and Fourier.

Both are pure functions without parameters; they return float32 features of shape
``t.shape + (dim,)``, so they work on one example (``t`` a scalar) as on a batch.

Example::

    >>> import jax.numpy as jnp
    >>> from gen.nn.embeddings import timestep_embedding, fourier_features
    >>> timestep_embedding(jnp.array([0.0, 10.0, 999.0]), 128).shape
    (3, 128)
    >>> fourier_features(jnp.array(0.3), 64).shape
    (64,)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _check_dim(dim: int, name: str) -> None:
    if not isinstance(dim, int | np.integer) or dim < 2:
        raise ValueError(f"{name}: dim must be an int >= 2, got {dim!r}.")


def timestep_embedding(t: Array, dim: int, max_period: float = 10000.0) -> Array:
    """The sinusoidal embedding of DDPM (Ho et al. 2020, ``nn.get_timestep_embedding``).

    With ``half = dim // 2`` and ``freqs[i] = exp(-log(max_period) * i / (half - 1))`` for
    ``i = 0..half-1`` (so the frequencies run from 1 down to exactly ``1 / max_period``)::

        emb = concat([sin(t * freqs), cos(t * freqs)], axis=-1)      # all sines, then all cosines

    and an odd ``dim`` gets one trailing zero. This is the tensor2tensor/fairseq form; note the
    ``half - 1`` denominator. diffusers' ``get_timestep_embedding`` defaults
    (``downscale_freq_shift=1, flip_sin_to_cos=False``) give the same; guided-diffusion and
    diffusers' ``UNet2DModel`` (``freq_shift=0, flip_sin_to_cos=True``) divide by ``half`` and
    put the cosines first.

    Args:
      t: times of any shape (DDPM feeds integer steps 0..999 as floats: scale continuous
        ``t`` in [0, 1] by the caller, e.g. ``1000 * t``, or the frequencies barely move).
      dim: embedding size, >= 4 when even (``half - 1`` must be positive), >= 5 when odd.
      max_period: the longest period, ``2 pi max_period``.

    Returns:
      float32 array of shape ``t.shape + (dim,)``.
    """
    _check_dim(dim, "timestep_embedding")
    half = dim // 2
    if half < 2:
        raise ValueError(f"timestep_embedding: dim must be >= 4 (half - 1 > 0), got {dim}.")
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * (-math.log(max_period) / (half - 1)))
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2 == 1:
        emb = jnp.pad(emb, [(0, 0)] * (emb.ndim - 1) + [(0, 1)])
    return emb


def fourier_features(t: Array, dim: int, scale: float = 16.0, seed: int = 0) -> Array:
    """Random Fourier features of a continuous input (score_sde's ``GaussianFourierProjection``).

    ``w ~ N(0, scale^2)`` of size ``dim // 2`` is drawn from ``jax.random.key(seed)`` at trace
    time: a fixed, non-trainable projection that is not part of any params pytree (so no
    optimizer or weight decay can move it), and the same for every call with the same
    ``(dim, scale, seed)``::

        emb = concat([sin(2 pi t w), cos(2 pi t w)], axis=-1)

    score_sde feeds ``log(sigma)`` with ``scale=16``; EDM feeds ``log(sigma) / 4`` with
    ``scale=16`` (and orders cos before sin, which only permutes features).

    Args:
      t: inputs of any shape, typically ``log(sigma)`` or continuous time in [0, 1].
      dim: embedding size, even.
      scale: standard deviation of the frequencies.
      seed: seed of the fixed frequencies.

    Returns:
      float32 array of shape ``t.shape + (dim,)``.
    """
    _check_dim(dim, "fourier_features")
    if dim % 2:
        raise ValueError(f"fourier_features: dim must be even, got {dim}.")
    w = jax.random.normal(jax.random.key(seed), (dim // 2,), jnp.float32) * scale
    args = 2 * jnp.pi * jnp.asarray(t, jnp.float32)[..., None] * w
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
