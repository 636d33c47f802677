"""Decoder likelihoods against float64 NumPy recomputations, DMoL against direct sums over bins."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.vae import likelihoods as L


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_gaussian_learned_and_fixed_match_float64_and_broadcast_over_samples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    params = rng.normal(size=(4, 5, 3, 2)).astype(np.float32) * [1.0, 2.0]  # log sigma in +-4
    lp = np.asarray(L.gaussian((3,)).log_prob(jnp.asarray(params), jnp.asarray(x)))
    m, s = params[..., 0].astype(np.float64), np.exp(params[..., 1].astype(np.float64))
    ref = np.sum(-0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), -1)
    assert lp.shape == (4, 5)
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-4)

    fixed = L.gaussian((3,), std=0.3)
    lp = np.asarray(fixed.log_prob(jnp.asarray(params[..., 0]), jnp.asarray(x)))
    ref = np.sum(-0.5 * ((x - m) / 0.3) ** 2 - np.log(0.3) - 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-4)
    assert fixed.param_shape == (3,) and L.gaussian((3,)).param_shape == (3, 2)


def test_bernoulli_matches_float64_and_is_finite_at_extreme_logits():
    rng = np.random.default_rng(1)
    logits = np.concatenate([rng.normal(size=(6, 10)) * 5, np.full((1, 10), 80.0),
                             np.full((1, 10), -80.0)]).astype(np.float32)
    x = rng.integers(0, 2, (8, 10)).astype(np.float32)
    lp = np.asarray(L.bernoulli((10,)).log_prob(jnp.asarray(logits), jnp.asarray(x)))
    lg = logits.astype(np.float64)
    ref = np.sum(x * -np.logaddexp(0, -lg) + (1 - x) * -np.logaddexp(0, lg), -1)
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-3)
    grads = jax.grad(lambda p: jnp.sum(L.bernoulli((10,)).log_prob(p, jnp.asarray(x))))(
        jnp.asarray(logits))
    assert np.all(np.isfinite(grads))


def _dmol_params(rng, K, C, lead=(), loc_scale=1.0, log_scale_range=(-7.5, 2.0)):
    """Raw DMoL params of shape (*lead, 1, 1, P) and their float64 parts."""
    n = (*lead, 1, 1)
    logits = rng.normal(size=(*n, K)) * 2
    means = rng.uniform(-loc_scale, loc_scale, (*n, K, C))
    log_s = rng.uniform(*log_scale_range, (*n, K, C))
    coeffs = rng.normal(size=(*n, K, C * (C - 1) // 2))
    raw = np.concatenate([logits, means.reshape(*n, -1), log_s.reshape(*n, -1),
                          coeffs.reshape(*n, -1)], -1).astype(np.float32)
    parts = [p.astype(np.float32).astype(np.float64) for p in (logits, means, log_s, coeffs)]
    return raw, parts


def _dmol_reference(parts, v):
    """float64 probability of pixel values ``v`` (..., C) in 0..255 by CDF differences."""
    logits, means, log_s, coeffs = parts
    log_s = np.maximum(log_s, -7.0)
    coeffs = np.tanh(coeffs)
    C = v.shape[-1]
    x = 2.0 * v / 255.0 - 1.0
    rows, cols = np.tril_indices(C, -1)
    mu = means.copy()
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        mu[..., r] = mu[..., r] + coeffs[..., i] * x[..., None, c]
    s, vv, xx = np.exp(log_s), v[..., None, :], x[..., None, :]
    hi = np.where(vv >= 255, np.inf, (xx + 1 / 255 - mu) / s)
    lo = np.where(vv <= 0, -np.inf, (xx - 1 / 255 - mu) / s)
    # CDF differences, from the tail on the far side so that nothing cancels
    with np.errstate(over="ignore"):
        mass = np.where(lo > 0, _sigmoid(-lo) - _sigmoid(-hi), _sigmoid(hi) - _sigmoid(lo))
    probs = np.prod(mass, axis=-1)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.sum(weights * probs, -1)


@pytest.mark.parametrize("C", [1, 3])
def test_dmol_matches_a_float64_cdf_difference_on_every_branch(C):
    rng = np.random.default_rng(C)
    n = 400
    raw, parts = _dmol_params(rng, 4, C, lead=(n,), log_scale_range=(-4.0, 1.0))
    v = rng.integers(0, 256, (n, 1, 1, C)).astype(np.float64)
    v[:40] = 0  # both edge bins, on every channel
    v[40:80] = 255
    x = (2.0 * v / 255.0 - 1.0).astype(np.float32)
    lp = np.asarray(L.dmol((1, 1, C), 4).log_prob(jnp.asarray(raw), jnp.asarray(x)))
    ref = np.log(_dmol_reference(parts, v)[..., 0, 0])
    np.testing.assert_allclose(lp, ref, rtol=1e-4, atol=2e-4)


def test_dmol_sums_to_one_over_the_256_bins_even_at_extreme_scales_and_locations():
    rng = np.random.default_rng(3)
    K, n = 3, 12
    raw, _ = _dmol_params(rng, K, 1, lead=(n,), loc_scale=3.0, log_scale_range=(-9.0, 6.0))
    # a sharp component sitting on the edge bins, and one far outside [-1, 1]
    raw[0, ..., K:2 * K] = [-1.0, 1.0, 0.0]
    raw[0, ..., 2 * K:3 * K] = -7.0
    raw[1, ..., K:2 * K] = [-40.0, 40.0, 8.0]
    values = np.arange(256, dtype=np.float32)
    x = jnp.asarray((2 * values / 255 - 1)[:, None, None, None, None])   # (256, 1, 1, 1, 1)
    lp = L.dmol((1, 1, 1), K).log_prob(jnp.asarray(raw)[None], x)          # (256, n)
    total = np.exp(np.asarray(lp, np.float64)).sum(0)
    np.testing.assert_allclose(total, np.ones(n), atol=2e-5)
    grads = jax.grad(lambda p: jnp.sum(L.dmol((1, 1, 1), K).log_prob(p[None], x)))(
        jnp.asarray(raw))
    assert np.all(np.isfinite(grads))


def test_dmol_rgb_coupling_normalizes_over_green_and_blue_given_red():
    rng = np.random.default_rng(4)
    K = 2
    raw, parts = _dmol_params(rng, K, 3, log_scale_range=(-3.0, -1.0))
    gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).reshape(-1, 2)
    lik = L.dmol((1, 1, 3), K)
    for red in (0, 77, 255):
        v = np.concatenate([np.full((len(gb), 1), red), gb], -1).astype(np.float32)
        x = jnp.asarray((2 * v / 255 - 1)[:, None, None, :])
        p = np.exp(np.asarray(lik.log_prob(jnp.asarray(raw), x), np.float64)).sum()
        # the red marginal does not involve the coupling: sum_k pi_k P_k(red)
        logits, means, log_s, coeffs = parts
        red_only = [logits, means[..., :1], log_s[..., :1], coeffs[..., :0]]
        ref = _dmol_reference(red_only, np.array([[[red]]], np.float64))
        np.testing.assert_allclose(p, float(ref.squeeze()), rtol=2e-4)


def test_dmol_samples_follow_the_bin_probabilities_and_the_mean_its_expectation():
    rng = np.random.default_rng(5)
    raw, parts = _dmol_params(rng, 3, 1, log_scale_range=(-2.5, -1.0))
    lik = L.dmol((1, 1, 1), 3)
    draws = np.asarray(lik.sample(jax.random.key(0), jnp.broadcast_to(jnp.asarray(raw),
                                                                      (40_000, *raw.shape))))
    bins = np.round((draws + 1) * 127.5)
    np.testing.assert_allclose(draws, 2 * bins / 255 - 1, atol=1e-6)  # on the pixel grid
    probs = _dmol_reference(parts, np.arange(256.0)[:, None, None, None])[:, 0, 0]
    counts = np.bincount(bins.astype(int).ravel(), minlength=256)
    expected_mean = np.sum(probs * np.arange(256))
    assert abs(bins.mean() - expected_mean) < 4 * np.sqrt(
        np.sum(probs * (np.arange(256) - expected_mean) ** 2) / 40_000)
    assert 0.5 * np.abs(counts / 40_000 - probs).sum() < 0.03  # total variation
    mean = float(np.asarray(lik.mean(jnp.asarray(raw))).squeeze())
    w = np.exp(parts[0] - parts[0].max()) / np.exp(parts[0] - parts[0].max()).sum()
    assert math.isclose(mean, float(np.clip(np.sum(w * parts[1][..., 0]), -1, 1)), abs_tol=1e-5)


def test_make_likelihood_names_the_choices():
    assert L.make_likelihood("dmol", (2, 2, 3), num_mixtures=5).param_shape == (
        2, 2, L.dmol_num_params(3, 5)) == (2, 2, 50)
    with pytest.raises(ValueError, match="not one of"):
        L.make_likelihood("poisson", (3,))
