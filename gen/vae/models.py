"""Latent-variable models as pure functions: the one-layer VAE and Burda et al.'s two-layer VAE.

A :class:`LatentModel` works on batches: ``x`` is ``(B, *event)``, labels ``y`` are ``(B,)`` or
``None``, and latents are a tuple with one ``(k, B, d_l)`` array per stochastic layer, ``k``
samples per example. Its functions are what every objective and estimator of ``gen.vae`` needs:

- ``sample_q(enc, x, y, eps) -> (z, q_means)``: reparameterized ``z ~ q(z | x)`` from standard
  normal ``eps`` (``noise(key, k, B)``), and the mean of each layer's conditional ``q``;
- ``log_q(enc, x, y, z)`` and ``log_joint(dec, x, y, z) = log p(x | z) + log p(z)``, ``(k, B)``;
- ``log_weights(params, x, y, eps) = log p(x, z) - log q(z | x)`` in one pass, ``(k, B)``;
- ``elbo_terms(params, x, y, eps) -> (log_lik (B,), kl (B, sum d_l))``: the reconstruction term
  averaged over the ``k`` samples, and the KL per latent dimension, analytic where it exists
  (every layer's ``q`` against a standard normal), a sample average otherwise (``z1`` of the
  two-layer model, whose prior ``p(z1 | z2)`` is not standard);
- ``sample(dec, key, num, y) -> x`` from the prior, and ``decode(dec, z1, y)``: likelihood params.

Params are ``{"encoder": ..., "decoder": ...}``.

Two stochastic layers (Burda et al. 2016, section 5): ``q(z1 | x) q(z2 | z1)`` and
``p(z2) p(z1 | z2) p(x | z1)``, each conditional a diagonal Gaussian from an MLP (200-200 units
between x and z1 = 100, 100-100 between z1 and z2 = 50 in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gen.vae.likelihoods import Likelihood
from gen.vae.networks import ConvDecoderHead, ConvGaussianEncoder, GaussianMLP, MLPDecoder
from gen.vae.objectives import gaussian_kl, gaussian_log_prob

Array = jax.Array
Params = Any
Latents = tuple[Array, ...]


class LatentModel(NamedTuple):
    """A VAE as pure functions (see the module docstring)."""

    init: Callable[[Array, Array, Array | None], Params]
    noise: Callable[[Array, int, int], Latents]
    sample_q: Callable[[Params, Array, Array | None, Latents], tuple[Latents, Latents]]
    log_q: Callable[[Params, Array, Array | None, Latents], Array]
    log_joint: Callable[[Params, Array, Array | None, Latents], Array]
    log_weights: Callable[[Params, Array, Array | None, Latents], Array]
    elbo_terms: Callable[[Params, Array, Array | None, Latents], tuple[Array, Array]]
    sample: Callable[[Params, Array, int, Array | None], Array]
    decode: Callable[[Params, Array, Array | None], Array]
    likelihood: Likelihood
    latent_dims: tuple[int, ...]


def _flat(a: Array) -> Array:
    """``(k, B, ...) -> (k B, ...)``."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


def _unflat(a: Array, k: int) -> Array:
    return a.reshape(k, a.shape[0] // k, *a.shape[1:])


def _repeat(y: Array | None, k: int) -> Array | None:
    return None if y is None else jnp.tile(y, k)


def _log_normal(z: Array, mean: Array | float = 0.0, log_std: Array | float = 0.0) -> Array:
    return jnp.sum(gaussian_log_prob(z, mean, log_std), axis=-1)


def vae(
    likelihood: Likelihood,
    latent_dim: int,
    network: str = "mlp",
    hidden: Sequence[int] = (200, 200),
    activation: str = "tanh",
    channels: Sequence[int] = (32, 64),
    num_res_blocks: int = 1,
    num_classes: int | None = None,
    dtype: Any = jnp.float32,
) -> LatentModel:
    """The VAE with one Gaussian latent layer ``z`` of ``latent_dim`` and prior ``N(0, I)``.

    ``network="mlp"`` flattens the events (vectors, or images as in Burda et al.);
    ``network="conv"`` uses ``gen.nn``'s conv stacks (images). ``num_classes`` makes it a
    conditional VAE: labels go into the encoder and the decoder.
    """
    if network == "mlp":
        encoder = GaussianMLP(latent_dim, tuple(hidden), activation, num_classes, dtype)
        decoder = MLPDecoder(likelihood.param_shape, tuple(reversed(hidden)), activation,
                             num_classes, dtype)
    elif network == "conv":
        encoder = ConvGaussianEncoder(latent_dim, tuple(channels), num_res_blocks, num_classes,
                                      dtype)
        decoder = ConvDecoderHead(likelihood.param_shape, tuple(channels), num_res_blocks,
                                  num_classes, dtype)
    else:
        raise ValueError(f"network {network!r} is not 'mlp' or 'conv'.")

    def init(key: Array, x: Array, y: Array | None = None) -> Params:
        k_enc, k_dec = jax.random.split(key)
        z = jnp.zeros((x.shape[0], latent_dim))
        return {"encoder": encoder.init(k_enc, x, y)["params"],
                "decoder": decoder.init(k_dec, z, y)["params"]}

    def noise(key: Array, k: int, batch: int) -> Latents:
        return (jax.random.normal(key, (k, batch, latent_dim)),)

    def posterior(enc: Params, x: Array, y: Array | None) -> tuple[Array, Array]:
        return encoder.apply({"params": enc}, x, y)

    def sample_q(enc, x, y, eps):
        mean, log_std = posterior(enc, x, y)
        return (mean + jnp.exp(log_std) * eps[0],), (mean[None],)

    def log_q(enc, x, y, z):
        mean, log_std = posterior(enc, x, y)
        return _log_normal(z[0], mean, log_std)

    def decode(dec: Params, z: Array, y: Array | None) -> Array:
        return decoder.apply({"params": dec}, z, y)

    def log_lik(dec, x, y, z):
        k = z[0].shape[0]
        params = _unflat(decode(dec, _flat(z[0]), _repeat(y, k)), k)
        return likelihood.log_prob(params, x)

    def log_joint(dec, x, y, z):
        return log_lik(dec, x, y, z) + _log_normal(z[0])

    def log_weights(params, x, y, eps):
        mean, log_std = posterior(params["encoder"], x, y)
        z = mean + jnp.exp(log_std) * eps[0]
        return (log_joint(params["decoder"], x, y, (z,))
                - _log_normal(z, mean, log_std))

    def elbo_terms(params, x, y, eps):
        mean, log_std = posterior(params["encoder"], x, y)
        z = mean + jnp.exp(log_std) * eps[0]
        rec = jnp.mean(log_lik(params["decoder"], x, y, (z,)), axis=0)
        return rec, gaussian_kl(mean, log_std)

    def sample(dec, key, num, y=None):
        k_z, k_x = jax.random.split(key)
        z = jax.random.normal(k_z, (num, latent_dim))
        return _draw(likelihood, k_x, decode(dec, z, y))

    return LatentModel(init, noise, sample_q, log_q, log_joint, log_weights, elbo_terms, sample,
                       decode, likelihood, (latent_dim,))


def _draw(likelihood: Likelihood, key: Array, params: Array) -> Array:
    """A picture's worth of ``x``: Bernoulli means (grey levels), draws otherwise."""
    if likelihood.name == "bernoulli":
        return likelihood.mean(params)
    return likelihood.sample(key, params)


def two_layer_vae(
    likelihood: Likelihood,
    latent_dims: tuple[int, int] = (100, 50),
    hidden: Sequence[int] = (200, 200),
    hidden2: Sequence[int] = (100, 100),
    activation: str = "tanh",
    num_classes: int | None = None,
    dtype: Any = jnp.float32,
) -> LatentModel:
    """Burda et al.'s VAE with two stochastic layers (see the module docstring), MLPs only.

    Labels (``num_classes``) go into ``q(z1 | x)`` and ``p(x | z1)``.
    """
    d1, d2 = latent_dims
    q1 = GaussianMLP(d1, tuple(hidden), activation, num_classes, dtype)
    q2 = GaussianMLP(d2, tuple(hidden2), activation, None, dtype)
    p1 = GaussianMLP(d1, tuple(reversed(hidden2)), activation, None, dtype)
    px = MLPDecoder(likelihood.param_shape, tuple(reversed(hidden)), activation, num_classes,
                    dtype)

    def init(key: Array, x: Array, y: Array | None = None) -> Params:
        keys = jax.random.split(key, 4)
        z1, z2 = jnp.zeros((x.shape[0], d1)), jnp.zeros((x.shape[0], d2))
        return {
            "encoder": {"q1": q1.init(keys[0], x, y)["params"],
                        "q2": q2.init(keys[1], z1)["params"]},
            "decoder": {"p1": p1.init(keys[2], z2)["params"],
                        "px": px.init(keys[3], z1, y)["params"]},
        }

    def noise(key: Array, k: int, batch: int) -> Latents:
        k1, k2 = jax.random.split(key)
        return jax.random.normal(k1, (k, batch, d1)), jax.random.normal(k2, (k, batch, d2))

    def layer2(net, params, z1: Array) -> tuple[Array, Array]:
        k = z1.shape[0]
        mean, log_std = net.apply({"params": params}, _flat(z1))
        return _unflat(mean, k), _unflat(log_std, k)

    def sample_q(enc, x, y, eps):
        m1, s1 = q1.apply({"params": enc["q1"]}, x, y)
        z1 = m1 + jnp.exp(s1) * eps[0]
        m2, s2 = layer2(q2, enc["q2"], z1)
        return (z1, m2 + jnp.exp(s2) * eps[1]), (m1[None], m2)

    def log_q(enc, x, y, z):
        m1, s1 = q1.apply({"params": enc["q1"]}, x, y)
        m2, s2 = layer2(q2, enc["q2"], z[0])
        return _log_normal(z[0], m1, s1) + _log_normal(z[1], m2, s2)

    def decode(dec, z1, y):
        return px.apply({"params": dec["px"]}, z1, y)

    def log_lik(dec, x, y, z1):
        k = z1.shape[0]
        return likelihood.log_prob(_unflat(decode(dec, _flat(z1), _repeat(y, k)), k), x)

    def log_joint(dec, x, y, z):
        m1, s1 = layer2(p1, dec["p1"], z[1])
        return log_lik(dec, x, y, z[0]) + _log_normal(z[0], m1, s1) + _log_normal(z[1])

    def log_weights(params, x, y, eps):
        z, _ = sample_q(params["encoder"], x, y, eps)
        return log_joint(params["decoder"], x, y, z) - log_q(params["encoder"], x, y, z)

    def elbo_terms(params, x, y, eps):
        enc, dec = params["encoder"], params["decoder"]
        m1, s1 = q1.apply({"params": enc["q1"]}, x, y)
        z1 = m1 + jnp.exp(s1) * eps[0]
        m2, s2 = layer2(q2, enc["q2"], z1)
        z2 = m2 + jnp.exp(s2) * eps[1]
        pm1, ps1 = layer2(p1, dec["p1"], z2)
        kl1 = gaussian_log_prob(z1, m1, s1) - gaussian_log_prob(z1, pm1, ps1)  # sampled
        kl2 = gaussian_kl(m2, s2)                                              # given z1
        rec = jnp.mean(log_lik(dec, x, y, z1), axis=0)
        return rec, jnp.mean(jnp.concatenate([kl1, kl2], axis=-1), axis=0)

    def sample(dec, key, num, y=None):
        k2, k1, k_x = jax.random.split(key, 3)
        z2 = jax.random.normal(k2, (num, d2))
        m1, s1 = p1.apply({"params": dec["p1"]}, z2)
        z1 = m1 + jnp.exp(s1) * jax.random.normal(k1, m1.shape)
        return _draw(likelihood, k_x, decode(dec, z1, y))

    return LatentModel(init, noise, sample_q, log_q, log_joint, log_weights, elbo_terms, sample,
                       decode, likelihood, (d1, d2))
