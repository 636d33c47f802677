"""Spectral normalization (Miyato et al. 2018): layers whose weight is divided by its largest
singular value, estimated by power iteration.

A weight ``W`` is used as the matrix ``K`` of shape ``(fan_in, out)`` (a conv kernel
``(kh, kw, in, out)`` flattened to ``(kh kw in, out)``). The state is one vector ``u`` of size
``out``, kept in the ``"spectral"`` variable collection (the train state's ``model_state``, not
a gradient target). Each call runs ``n_power_iterations`` (default 1) from the stored ``u``:

    u <- K^T v / |K^T v|  with  v = K u / |K u|   (n times),   then
    v = K u / |K u|,   sigma = v^T K u,   W_SN = W / sigma

with ``u`` and ``v`` held constant for the gradient (``stop_gradient``), as in the paper.
Only a call with ``update_stats=True`` (a training step of the discriminator) stores the new
``u``; otherwise the output is the same pure function of ``(W, u)`` and nothing changes. Over
training steps ``u`` converges to ``K``'s top right singular vector, so ``sigma`` to the
largest singular value and ``W_SN``'s to 1.

Use them as ``model.apply({"params": p, "spectral": s}, x, update_stats=True,
mutable=["spectral"])`` in training and without ``mutable`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
COLLECTION = "spectral"


def _l2_normalize(x: Array, eps: float = 1e-12) -> Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x), eps))


def power_iteration(matrix: Array, u: Array, n_iterations: int = 1) -> tuple[Array, Array, Array]:
    """``(sigma, u, v)`` after ``n_iterations`` from ``u``; ``matrix`` is ``(m, n)``, ``u`` (n,).

    ``sigma = v^T K u`` estimates the largest singular value of ``K`` (float32, no gradient
    through ``u`` and ``v``).
    """
    k = jax.lax.stop_gradient(matrix.astype(jnp.float32))
    u = u.astype(jnp.float32)
    for _ in range(n_iterations):
        u = _l2_normalize(k.T @ _l2_normalize(k @ u))
    v = _l2_normalize(k @ u)
    k = matrix.astype(jnp.float32)
    return v @ k @ u, u, v


def spectral_normalize(kernel: Array, u: Array, n_iterations: int = 1) -> tuple[Array, Array]:
    """``(kernel / sigma, new u)``: ``kernel`` of any shape ``(..., out)``, ``u`` of size out."""
    sigma, u, _ = power_iteration(kernel.reshape(-1, kernel.shape[-1]), u, n_iterations)
    return (kernel / sigma).astype(kernel.dtype), u


class _SpectralWeight(nn.Module):
    """Holds ``u`` for one weight and returns the normalized weight."""

    n_power_iterations: int = 1

    @nn.compact
    def __call__(self, kernel: Array, update_stats: bool) -> Array:
        out = kernel.shape[-1]
        u_var = self.variable(
            COLLECTION, "u",
            lambda: _l2_normalize(jax.random.normal(self.make_rng("params"), (out,))))
        normalized, u = spectral_normalize(kernel, u_var.value, self.n_power_iterations)
        if update_stats and not self.is_initializing():
            u_var.value = u
        return normalized


class SNDense(nn.Module):
    """``nn.Dense`` with a spectrally normalized kernel."""

    features: int
    use_bias: bool = True
    n_power_iterations: int = 1
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array, update_stats: bool = False) -> Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        kernel = _SpectralWeight(self.n_power_iterations, name="sn")(kernel, update_stats)
        dtype = self.dtype or x.dtype
        y = jnp.dot(x.astype(dtype), kernel.astype(dtype))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
        return y


class SNConv(nn.Module):
    """``nn.Conv`` (NHWC, ``SAME`` padding by default) with a spectrally normalized kernel."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    n_power_iterations: int = 1
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array, update_stats: bool = False) -> Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape)
        kernel = _SpectralWeight(self.n_power_iterations, name="sn")(kernel, update_stats)
        dtype = self.dtype or x.dtype
        y = jax.lax.conv_general_dilated(
            x.astype(dtype), kernel.astype(dtype), tuple(self.strides), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
        return y


class SNEmbed(nn.Module):
    """``nn.Embed`` with a spectrally normalized table (the projection discriminator's)."""

    num_embeddings: int
    features: int
    n_power_iterations: int = 1
    embedding_init: Any = nn.initializers.xavier_uniform()

    @nn.compact
    def __call__(self, labels: Array, update_stats: bool = False) -> Array:
        table = self.param("embedding", self.embedding_init, (self.num_embeddings, self.features))
        table = _SpectralWeight(self.n_power_iterations, name="sn")(table, update_stats)
        return jnp.take(table, labels, axis=0)
