"""Vector quantization for the VQ-VAE (van den Oord et al. 2017), as pure functions.

For encoder outputs ``z_e`` (``(..., D)``) and a codebook ``e`` (``(K, D)``):

    k(x)  = argmin_j ||z_e - e_j||^2,  z_q = e_k,
    z_st  = z_e + stop_gradient(z_q - z_e)         (straight-through: the decoder's gradient
                                                    flows to the encoder unchanged),
    loss  = log-lik + beta ||z_e - sg(z_q)||^2 [+ ||sg(z_e) - z_q||^2 with a learned codebook].

The codebook is learned either by that codebook loss or, by default, by exponential moving
averages (the paper's appendix A.1; Sonnet's ``VectorQuantizerEMA``): with per-step counts
``n_j`` and sums ``s_j`` of the vectors assigned to code j,

    N_j <- g N_j + (1 - g) n_j,   m_j <- g m_j + (1 - g) s_j,   e_j = m_j / N~_j,

where ``N~_j = (N_j + eps) / (sum N + K eps) * sum N`` (Laplace smoothing). The EMA statistics
are :class:`CodebookState`, kept by the trainer as non-trainable model state. A code whose
average usage ``N_j`` falls below ``threshold`` times the uniform share ``sum N / K`` is *dead*
and restarted at a random encoder output of the current batch (as in Jukebox, Dhariwal et al.
2020). Perplexity ``exp(-sum_j p_j log p_j)`` of the code frequencies ``p`` measures how many
codes are in use (K when all are used equally).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class CodebookState(NamedTuple):
    """Running statistics of a codebook.

    Attributes:
      embedding: the codes ``(K, D)`` (used by the EMA codebook; a learned codebook lives in
        the params and keeps this as a copy for restarts).
      count: the moving average ``N`` of assignments per step, ``(K,)``.
      total: the moving average ``m`` of the sums of the assigned vectors, ``(K, D)``.
    """

    embedding: Array
    count: Array
    total: Array


def nearest_code(z: Array, codebook: Array) -> Array:
    """Indices ``(...)`` of the codes nearest to ``z`` ``(..., D)`` in squared distance."""
    d = (jnp.sum(z * z, -1, keepdims=True) - 2.0 * z @ codebook.T
         + jnp.sum(codebook * codebook, -1))
    return jnp.argmin(d, axis=-1)


def straight_through(z_e: Array, z_q: Array) -> Array:
    """``z_q`` forward, the identity backward: ``z_e + stop_gradient(z_q - z_e)``."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def vq_losses(z_e: Array, z_q: Array) -> tuple[Array, Array]:
    """``(commitment, codebook)``: ``mean ||z_e - sg(z_q)||^2`` and ``mean ||sg(z_e) - z_q||^2``.

    Means are over all positions and the D coordinates, as in the paper's implementation.
    """
    commitment = jnp.mean(jnp.square(z_e - jax.lax.stop_gradient(z_q)))
    codebook = jnp.mean(jnp.square(jax.lax.stop_gradient(z_e) - z_q))
    return commitment, codebook


def code_frequencies(indices: Array, num_codes: int) -> Array:
    """The share of each code among ``indices`` (any shape), ``(K,)``."""
    onehot = jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=jnp.float32)
    return jnp.mean(onehot, axis=0)


def perplexity(frequencies: Array) -> Array:
    """``exp(-sum_j p_j log p_j)`` of code frequencies ``p`` (0 log 0 = 0)."""
    p = frequencies / jnp.sum(frequencies)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def init_codebook(key: Array, z: Array, num_codes: int) -> CodebookState:
    """A codebook of ``num_codes`` encoder outputs drawn from ``z`` ``(N, D)`` (with a little
    noise, so repeated draws differ), with uniform usage statistics."""
    k_pick, k_noise = jax.random.split(key)
    picks = z[jax.random.randint(k_pick, (num_codes,), 0, z.shape[0])]
    scale = 1e-2 * (jnp.std(z) + 1e-6)
    embedding = picks + scale * jax.random.normal(k_noise, picks.shape)
    share = z.shape[0] / num_codes
    count = jnp.full((num_codes,), share, jnp.float32)
    return CodebookState(embedding, count, embedding * share)


def ema_update(state: CodebookState, z: Array, indices: Array, decay: float,
               epsilon: float = 1e-5, update_embedding: bool = True) -> CodebookState:
    """One EMA step of the statistics from vectors ``z`` ``(N, D)`` assigned to ``indices``.

    With ``update_embedding=False`` only the usage count moves (a learned codebook's usage).
    """
    K = state.count.shape[0]
    onehot = jax.nn.one_hot(indices, K, dtype=z.dtype)
    count = decay * state.count + (1.0 - decay) * jnp.sum(onehot, axis=0)
    if not update_embedding:
        return state._replace(count=count)
    total = decay * state.total + (1.0 - decay) * onehot.T @ z
    n = jnp.sum(count)
    smoothed = (count + epsilon) / (n + K * epsilon) * n
    return CodebookState(total / smoothed[:, None], count, total)


def restart_dead_codes(key: Array, state: CodebookState, z: Array, threshold: float
                       ) -> tuple[CodebookState, Array]:
    """Moves every code with ``count < threshold * mean(count)`` to a random row of ``z``.

    Returns the new state and the number of codes restarted. A restarted code gets the uniform
    share of usage, so it is not restarted again at once.
    """
    K = state.count.shape[0]
    share = jnp.mean(state.count)
    dead = state.count < threshold * share
    picks = z[jax.random.randint(key, (K,), 0, z.shape[0])]
    embedding = jnp.where(dead[:, None], picks, state.embedding)
    count = jnp.where(dead, share, state.count)
    total = jnp.where(dead[:, None], picks * share, state.total)
    return CodebookState(embedding, count, total), jnp.sum(dead)
