"""Evaluation: the importance-sampled log-likelihood, the ELBO, and active units.

Burda et al. 2016 estimate ``log p(x)`` by importance sampling with the encoder as proposal:

    log p(x) ~ log (1/K) sum_{i=1..K} p(x, z_i) / q(z_i | x),   z_i ~ q(z | x),

a stochastic lower bound (``L_K``) that tends to ``log p(x)`` as K grows (K = 5000 in their
tables; 1000 here by default). :func:`importance_sampled` draws the K samples in chunks inside
one ``lax.scan`` with a running ``logsumexp``, so memory holds one chunk, not K samples, and the
whole estimate is one compiled program. The same samples give the ELBO (the mean of ``log w_i``)
and each layer's posterior mean ``E_q[z]``.

A latent unit u is *active* (Burda et al., section 5.2) when ``Cov_x(E_q[z_u | x]) > 0.01``:
:func:`active_units` counts them from the test-set moments of the posterior means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class ISResult(NamedTuple):
    """Per-example results of :func:`importance_sampled`.

    Attributes:
      log_px: the importance-sampled ``log p(x)`` estimate, ``(B,)``.
      elbo: the mean of the ``log w_i``, an estimate of the ELBO, ``(B,)``.
      posterior_mean: ``E_q[z | x]`` of every layer, concatenated, ``(B, sum d_l)``.
    """

    log_px: Array
    elbo: Array
    posterior_mean: Array


def importance_sampled(
    log_weights: Callable[[Array, int], tuple[Array, Any]],
    key: Array,
    num_samples: int = 1000,
    chunk: int = 100,
) -> ISResult:
    """The K-sample importance-sampling estimate, in ``num_samples / chunk`` chunks.

    Args:
      log_weights: ``log_weights(key, k) -> (log_w (k, B), q_means)``, ``q_means`` a tuple of
        ``(k or 1, B, d_l)`` conditional means of ``q`` per layer.
      key: the randomness; chunk ``i`` uses ``fold_in(key, i)``.
      num_samples: K.
      chunk: samples drawn at once; must divide K. Memory grows with ``chunk``, not K.
    """
    if num_samples < 1 or chunk < 1 or num_samples % chunk:
        raise ValueError(f"importance sampling: chunk={chunk} must divide num_samples="
                         f"{num_samples} (both positive).")
    log_w0, means0 = jax.eval_shape(lambda k: log_weights(k, chunk), key)
    batch = log_w0.shape[1]
    dims = sum(m.shape[-1] for m in means0)

    def body(carry, i):
        lse, total, mean_sum = carry
        log_w, means = log_weights(jax.random.fold_in(key, i), chunk)
        lse = jnp.logaddexp(lse, jax.nn.logsumexp(log_w, axis=0))
        mean = jnp.concatenate([jnp.mean(m, axis=0) for m in means], axis=-1)
        return (lse, total + jnp.sum(log_w, axis=0), mean_sum + mean), None

    init = (jnp.full((batch,), -jnp.inf), jnp.zeros((batch,)), jnp.zeros((batch, dims)))
    n = num_samples // chunk
    (lse, total, mean_sum), _ = jax.lax.scan(body, init, jnp.arange(n))
    return ISResult(lse - math.log(num_samples), total / num_samples, mean_sum / n)


def active_units(mean: np.ndarray, mean_sq: np.ndarray, threshold: float = 0.01) -> int:
    """The number of units with ``Var_x(E_q[z_u]) = E_x[m_u^2] - E_x[m_u]^2 > threshold``.

    Args:
      mean, mean_sq: the test-set averages of the posterior means ``m(x)`` and of their squares.
    """
    var = np.asarray(mean_sq, np.float64) - np.asarray(mean, np.float64) ** 2
    return int(np.sum(var > threshold))
