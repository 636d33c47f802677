"""VAE objectives: the ELBO with analytic KL, beta, free bits, KL warm-up, IWAE and DReG.

With ``q(z | x) = N(mu, diag sigma^2)`` and the prior ``N(0, I)``:

    ELBO(x)  = E_q[log p(x | z)] - KL(q(z | x) || p(z)),
    KL       = sum_j (mu_j^2 + sigma_j^2 - 1) / 2 - log sigma_j                (analytic),
    loss     = -E_q[log p(x | z)] + beta_t * sum_g max(lambda, E_batch[KL_g])   (beta-VAE,
               free bits of Kingma et al. 2016 over G groups of latents; lambda = 0: plain KL),
    beta_t   = beta * min(1, t / warmup)                                         (KL warm-up).

The importance-weighted bound (Burda et al. 2016) with ``k`` samples ``z_i ~ q(z | x)`` and
``log w_i = log p(x, z_i) - log q(z_i | x)`` is ``L_k = logsumexp_i(log w_i) - log k``; ``L_1``
is the ELBO and ``L_k`` rises with ``k`` to ``log p(x)``. Its gradient estimator for the encoder
can be replaced by DReG (Tucker et al. 2019): with normalized weights ``w~_i`` and ``log q``
evaluated with the encoder's parameters held fixed,

    grad_phi L_k ~ sum_i w~_i^2  d log w_i / d z_i  d z_i / d phi,

unbiased for the same gradient with lower variance; the decoder keeps ``sum_i w~_i grad log w_i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gen.vae.likelihoods import HALF_LOG_2PI

Array = jax.Array
Params = Any


def gaussian_kl(mean: Array, log_std: Array) -> Array:
    """Elementwise ``KL(N(mean, exp(log_std)^2) || N(0, 1))`` in nats."""
    return 0.5 * (mean * mean + jnp.exp(2.0 * log_std) - 1.0) - log_std


def gaussian_log_prob(z: Array, mean: Array | float = 0.0, log_std: Array | float = 0.0) -> Array:
    """Elementwise ``log N(z; mean, exp(log_std)^2)`` in nats."""
    u = (z - mean) * jnp.exp(-log_std)
    return -0.5 * u * u - log_std - HALF_LOG_2PI


def kl_weight(step: Array | int, beta: float = 1.0, warmup_steps: int = 0) -> Array:
    """``beta * min(1, step / warmup_steps)`` (``beta`` when ``warmup_steps`` is 0)."""
    if warmup_steps <= 0:
        return jnp.asarray(beta, jnp.float32)
    return beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


def group_kl(kl: Array, num_groups: int) -> Array:
    """``(..., d) -> (..., G)``: per-dimension KLs summed over G equal contiguous groups."""
    d = kl.shape[-1]
    if num_groups < 1 or d % num_groups:
        raise ValueError(f"free bits: {num_groups} groups must divide the {d} latent dimensions.")
    return jnp.sum(kl.reshape(*kl.shape[:-1], num_groups, d // num_groups), axis=-1)


def free_bits_kl(kl: Array, free_bits: float = 0.0, num_groups: int = 1) -> Array:
    """``sum_g max(lambda, mean_batch KL_g)`` for per-example, per-dimension ``kl`` ``(B, d)``.

    Kingma et al. 2016, eq. (15): the KL of each group costs nothing below ``lambda`` nats, so
    the encoder is not pushed to switch it off. With ``free_bits=0`` this is ``mean_batch KL``.
    """
    per_group = jnp.mean(group_kl(kl, num_groups), axis=0)
    return jnp.sum(jnp.maximum(per_group, free_bits)) if free_bits > 0 else jnp.sum(per_group)


def elbo_loss(log_lik: Array, kl: Array, weight: Array | float = 1.0, free_bits: float = 0.0,
              num_groups: int = 1) -> tuple[Array, dict[str, Array]]:
    """The training loss ``-mean log p(x | z) + weight * free_bits_kl(kl)`` and its parts.

    Args:
      log_lik: ``(B,)`` reconstruction log-likelihoods (one sample of z, or their mean).
      kl: ``(B, d)`` per-dimension KL (analytic, or a single-sample estimate).
      weight: the KL weight ``beta_t``.
    Returns:
      the scalar loss and ``{"elbo", "kl", "reconstruction"}`` batch means (the true ELBO,
      whatever the weight and free bits).
    """
    rec = jnp.mean(log_lik)
    kl_total = jnp.mean(jnp.sum(kl, -1))
    loss = -rec + weight * free_bits_kl(kl, free_bits, num_groups)
    return loss, {"elbo": rec - kl_total, "kl": kl_total, "reconstruction": rec}


def iwae_bound(log_w: Array, axis: int = 0) -> Array:
    """``logsumexp(log_w) - log k`` over the ``k`` samples on ``axis``."""
    k = log_w.shape[axis]
    return jax.nn.logsumexp(log_w, axis=axis) - math.log(k)


def dreg_gradients(
    sample_q: Callable[[Params, Array], Any],
    log_weight: Callable[[Params, Any], Array],
    encoder_params: Params,
    decoder_params: Params,
    noise: Any,
) -> tuple[Array, Params, Params]:
    """The IWAE bound and DReG gradients, averaged over the batch.

    Args:
      sample_q: ``sample_q(encoder_params, noise) -> z``, reparameterized samples of
        ``q(z | x)`` with the ``k`` samples on axis 0 and the batch on axis 1 of every leaf.
      log_weight: ``log_weight(decoder_params, z) -> (k, B)``: ``log p(x, z) - log q(z | x)``
        with ``q``'s parameters fixed (the caller closes over ``stop_gradient`` of them).
      encoder_params, decoder_params: the parameters ``phi`` and ``theta``.
      noise: the reparameterization noise.
    Returns:
      ``(mean_B L_k, grad_theta, grad_phi)``: the ascent directions of the mean bound,
      ``sum_i w~_i grad_theta log w_i`` and ``sum_i w~_i^2 (d log w_i / d z_i) d z_i / d phi``.
    """
    z, pull_z = jax.vjp(lambda phi: sample_q(phi, noise), encoder_params)
    log_w, pull_w = jax.vjp(log_weight, decoder_params, z)
    batch = log_w.shape[1]
    weights = jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0)) / batch
    grad_theta, grad_z = pull_w(weights)
    w = weights * batch  # d L / d log w_i = w~_i / B; the z path takes a second factor w~_i
    grad_z = jax.tree.map(lambda g: g * w.reshape(w.shape + (1,) * (g.ndim - 2)), grad_z)
    (grad_phi,) = pull_z(grad_z)
    return jnp.mean(iwae_bound(log_w)), grad_theta, grad_phi
