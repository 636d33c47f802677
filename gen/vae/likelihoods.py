"""Decoder output distributions ``p(x | z)``: Gaussian, Bernoulli, discretized logistic mixture.

A :class:`Likelihood` is a NamedTuple of pure functions over the decoder's raw output ``params``
of shape ``(..., *param_shape)`` and events ``x`` of shape ``(..., *event_shape)``; leading axes
broadcast (``params`` of ``k`` samples ``(k, B, ...)`` against ``x`` of ``(B, ...)``), and
``log_prob`` sums over the event, in nats.

- ``gaussian(event_shape)``: ``params = (..., *event, 2)``, the mean and ``log sigma`` per scalar;
  ``gaussian(event_shape, std=s)`` fixes ``sigma = s`` and ``params`` is the mean alone.
  ``log N(x; m, s) = -(x - m)^2 / (2 s^2) - log s - log(2 pi) / 2``.
- ``bernoulli(event_shape)``: ``params`` are logits ``l``; ``log p(x) = x l - softplus(l)`` for
  ``x`` in {0, 1} (binarized images).
- ``dmol(event_shape, K)``: PixelCNN++'s discretized mixture of logistics (Salimans et al. 2017)
  for 8-bit images scaled to ``x = 2 v / 255 - 1``, ``v`` in {0, ..., 255}. Per pixel, K
  components share one mixture weight over the C channels; channel ``c``'s location is
  ``mu_kc + sum_{c' < c} a_kcc' x_c'`` (tanh coefficients; for RGB the paper's
  ``m_G + a x_R``, ``m_B + b x_R + c x_G``). A channel's bin ``v`` has the mass
  ``sigmoid((x + 1/255 - mu) / s) - sigmoid((x - 1/255 - mu) / s)``, with the lower (upper)
  term replaced by 0 (1) at ``v = 0`` (``v = 255``), computed in log space without
  cancellation for any scale and location. ``params`` hold ``K * (1 + 2C + C(C-1)/2)``
  channels per pixel: mixture logits, locations, log-scales (clipped below at -7), coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MIN_LOG_SCALE = -7.0


class Likelihood(NamedTuple):
    """A decoder's output distribution.

    Attributes:
      name: ``"gaussian"``, ``"bernoulli"`` or ``"dmol"``.
      event_shape: the shape of one event ``x``.
      param_shape: the shape of the decoder's output for one event.
      log_prob: ``log_prob(params, x) -> (...)``: ``log p(x | params)`` in nats, summed over
        the event; leading axes broadcast.
      sample: ``sample(key, params) -> x`` of shape ``(..., *event_shape)``.
      mean: ``mean(params) -> (..., *event_shape)``, the distribution's mean (DMoL: of the
        continuous logistics, clipped to [-1, 1]).
    """

    name: str
    event_shape: tuple[int, ...]
    param_shape: tuple[int, ...]
    log_prob: Callable[[Array, Array], Array]
    sample: Callable[[Array, Array], Array]
    mean: Callable[[Array], Array]


def _sum_event(values: Array, event_ndim: int) -> Array:
    return jnp.sum(values, axis=tuple(range(-event_ndim, 0)))


def gaussian(event_shape: tuple[int, ...], std: float | None = None) -> Likelihood:
    """A diagonal Gaussian: learned ``log sigma`` per scalar (``std=None``) or fixed ``std``."""
    event_shape = tuple(event_shape)
    n = len(event_shape)
    if std is not None and not std > 0:
        raise ValueError(f"gaussian likelihood: std must be positive, got {std}.")

    def split(params: Array) -> tuple[Array, Array]:
        if std is None:
            return params[..., 0], params[..., 1]
        return params, jnp.full_like(params, math.log(std))

    def log_prob(params: Array, x: Array) -> Array:
        mean, log_std = split(params)
        z = (x - mean) * jnp.exp(-log_std)
        return _sum_event(-0.5 * z * z - log_std - HALF_LOG_2PI, n)

    def sample(key: Array, params: Array) -> Array:
        mean, log_std = split(params)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    param_shape = (*event_shape, 2) if std is None else event_shape
    return Likelihood("gaussian", event_shape, param_shape, log_prob, sample,
                      lambda params: split(params)[0])


def bernoulli(event_shape: tuple[int, ...]) -> Likelihood:
    """Independent Bernoulli variables with logits ``params`` (for binarized images)."""
    event_shape = tuple(event_shape)
    n = len(event_shape)

    def log_prob(logits: Array, x: Array) -> Array:
        return _sum_event(x * logits - jax.nn.softplus(logits), n)

    def sample(key: Array, logits: Array) -> Array:
        return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(logits.dtype)

    return Likelihood("bernoulli", event_shape, event_shape, log_prob, sample, jax.nn.sigmoid)


def dmol_num_params(channels: int, num_mixtures: int) -> int:
    """Decoder channels per pixel of a DMoL with ``num_mixtures`` components."""
    return num_mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def _log_one_minus_exp_neg(log_d: Array) -> Array:
    """``log(1 - exp(-d))`` for ``d = exp(log_d) > 0``, accurate for tiny and large ``d``."""
    d = jnp.exp(log_d)
    small = log_d < -10.0
    safe_d = jnp.where(small, 1.0, d)
    return jnp.where(small, log_d - 0.5 * d, jnp.log(-jnp.expm1(-safe_d)))


def dmol(event_shape: tuple[int, int, int], num_mixtures: int = 10) -> Likelihood:
    """PixelCNN++'s discretized logistic mixture over 8-bit ``(H, W, C)`` images in [-1, 1]."""
    H, W, C = event_shape
    K = num_mixtures
    if K < 1:
        raise ValueError(f"dmol: num_mixtures must be >= 1, got {K}.")
    rows, cols = np.tril_indices(C, -1)

    def split(params: Array) -> tuple[Array, Array, Array, Array]:
        lead = params.shape[:-1]
        logits = params[..., :K]
        means = params[..., K:K + K * C].reshape(*lead, K, C)
        log_scales = jnp.maximum(params[..., K + K * C:K + 2 * K * C].reshape(*lead, K, C),
                                 MIN_LOG_SCALE)
        coeffs = jnp.tanh(params[..., K + 2 * K * C:].reshape(*lead, K, len(rows)))
        return logits, means, log_scales, coeffs

    def coupling(coeffs: Array, x: Array) -> Array:
        """``sum_{c' < c} a_kcc' x_c'`` of shape ``(..., K, C)`` for ``x`` ``(..., C)``."""
        if C == 1:
            return jnp.zeros((*coeffs.shape[:-1], 1), coeffs.dtype)
        A = jnp.zeros((*coeffs.shape[:-1], C, C), coeffs.dtype).at[..., rows, cols].set(coeffs)
        return jnp.einsum("...kcd,...d->...kc", A, x)

    def log_prob(params: Array, x: Array) -> Array:
        logits, means, log_scales, coeffs = split(params)
        x = jnp.asarray(x, params.dtype)
        bins = jnp.round((x + 1.0) * 127.5)
        mu = means + coupling(coeffs, x)
        centered = x[..., None, :] - mu
        inv_s = jnp.exp(-log_scales)
        plus = inv_s * (centered + 1.0 / 255.0)
        minus = inv_s * (centered - 1.0 / 255.0)
        log_cdf_plus = -jax.nn.softplus(-plus)            # bin 0: P(X < x + 1/255)
        log_sf_minus = -jax.nn.softplus(minus)            # bin 255: P(X > x - 1/255)
        # log(sigmoid(plus) - sigmoid(minus)), with plus - minus = d = 2 / (255 s):
        log_mid = (plus + _log_one_minus_exp_neg(math.log(2.0 / 255.0) - log_scales)
                   - jax.nn.softplus(plus) - jax.nn.softplus(minus))
        b = bins[..., None, :]
        lp = jnp.where(b <= 0, log_cdf_plus, jnp.where(b >= 255, log_sf_minus, log_mid))
        per_pixel = jax.nn.logsumexp(jax.nn.log_softmax(logits) + jnp.sum(lp, -1), axis=-1)
        return jnp.sum(per_pixel, axis=(-2, -1))

    def sample(key: Array, params: Array) -> Array:
        logits, means, log_scales, coeffs = split(params)
        k_mix, k_logistic = jax.random.split(key)
        k = jax.random.categorical(k_mix, logits)
        pick = lambda a: jnp.take_along_axis(a, k[..., None, None], axis=-2)[..., 0, :]
        mu, log_s, a = pick(means), pick(log_scales), pick(coeffs)
        u = jax.random.uniform(k_logistic, mu.shape, mu.dtype, 1e-5, 1.0 - 1e-5)
        noise = jnp.exp(log_s) * (jnp.log(u) - jnp.log1p(-u))
        x = jnp.zeros_like(mu)
        for c in range(C):  # channel c's location depends on the sampled channels before it
            loc = mu[..., c] + sum(a[..., i] * x[..., cols[i]] for i in range(len(rows))
                                   if rows[i] == c)
            v = jnp.clip(jnp.round((loc + noise[..., c] + 1.0) * 127.5), 0.0, 255.0)
            x = x.at[..., c].set(v / 127.5 - 1.0)
        return x

    def mean(params: Array) -> Array:
        logits, means, _, coeffs = split(params)
        mu = means
        for c in range(1, C):  # E[x_c | k] with the coupling to E[x_c' | k]
            extra = sum(coeffs[..., i] * mu[..., cols[i]] for i in range(len(rows))
                        if rows[i] == c)
            mu = mu.at[..., c].add(extra)
        weights = jax.nn.softmax(logits)[..., None]
        return jnp.clip(jnp.sum(weights * mu, axis=-2), -1.0, 1.0)

    return Likelihood("dmol", (H, W, C), (H, W, dmol_num_params(C, K)), log_prob, sample, mean)


LIKELIHOODS = ("gaussian", "gaussian_fixed", "bernoulli", "dmol")


def make_likelihood(name: str, event_shape: tuple[int, ...], *, std: float = 1.0,
                    num_mixtures: int = 10) -> Likelihood:
    """The likelihood ``name`` (one of ``LIKELIHOODS``) for events of ``event_shape``."""
    if name == "gaussian":
        return gaussian(event_shape)
    if name == "gaussian_fixed":
        return gaussian(event_shape, std=std)
    if name == "bernoulli":
        return bernoulli(event_shape)
    if name == "dmol":
        return dmol(event_shape, num_mixtures)
    raise ValueError(f"likelihood {name!r} is not one of {', '.join(LIKELIHOODS)}.")
