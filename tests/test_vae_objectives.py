"""VAE objectives and the IS estimator on a linear-Gaussian model, whose p(x) is exact.

The model ``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, s^2 I_D)`` is gen.vae's own VAE with no hidden
layers and a fixed-variance Gaussian decoder; its marginal is ``N(b, W W^T + s^2 I)``. With
orthogonal columns of W the true posterior is a diagonal Gaussian with a mean linear in x, so
the encoder can be set to it exactly.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import vae as V

D, d, SIGMA = 3, 2, 0.5


def _linear_gaussian():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(D, d)))
    W = q * np.array([1.5, 0.7])                      # orthogonal columns
    b = rng.normal(size=D)
    post_var = 1.0 / (1.0 + np.sum(W * W, 0) / SIGMA**2)  # diagonal (I + W^T W / s^2)^-1
    K_mean = W * post_var / SIGMA**2                     # mean = (x - b) @ K_mean
    model = V.vae(V.gaussian((D,), std=SIGMA), d, hidden=())
    exact = {
        "encoder": {"out": {"kernel": np.concatenate([K_mean, np.zeros((D, d))], 1),
                            "bias": np.concatenate([-b @ K_mean, 0.5 * np.log(post_var)])}},
        "decoder": {"out": {"kernel": W.T, "bias": b}},
    }
    exact = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), exact)
    return model, exact, W, b


def _log_marginal(x, W, b):
    cov = W @ W.T + SIGMA**2 * np.eye(D)
    r = x - b
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (np.einsum("ni,ij,nj->n", r, np.linalg.inv(cov), r) + logdet
                   + D * np.log(2 * np.pi))


def _perturbed(params, scale=1.0, wider=False):
    """An encoder off the true posterior: shifted means, other widths (wider: a proposal with
    heavier tails than the posterior, for which importance sampling converges fast)."""
    enc = params["encoder"]["out"]
    shift = jnp.array([0.3, -0.2, 0.4, 0.4] if wider else [0.3, -0.2, 0.4, -0.5])
    return {**params, "encoder": {"out": {"kernel": enc["kernel"] * (1 - 0.4 * scale) + 0.2 * scale,
                                          "bias": enc["bias"] + scale * shift}}}


def _closed_form_elbo(params, x, W, b):
    enc = jax.tree.map(lambda a: np.asarray(a, np.float64), params["encoder"]["out"])
    out = x @ enc["kernel"] + enc["bias"]
    m, log_s = out[:, :d], out[:, d:]
    s2 = np.exp(2 * log_s)
    r = x - m @ W.T - b
    rec = (-0.5 * D * np.log(2 * np.pi * SIGMA**2)
           - (np.sum(r * r, 1) + s2 @ np.sum(W * W, 0)) / (2 * SIGMA**2))
    kl = np.sum(0.5 * (m * m + s2 - 1) - log_s, 1)
    return rec - kl


X = np.array([[0.3, -1.0, 2.0], [-1.5, 0.5, 0.1]])


def test_with_the_true_posterior_every_weight_is_the_exact_marginal():
    model, params, W, b = _linear_gaussian()
    x = jnp.asarray(X, jnp.float32)
    log_w = model.log_weights(params, x, None, model.noise(jax.random.key(0), 64, 2))
    np.testing.assert_allclose(log_w, np.broadcast_to(_log_marginal(X, W, b), (64, 2)),
                               rtol=1e-5, atol=1e-4)


def test_iwae_with_k_1_is_the_elbo_and_the_bound_rises_with_k_to_the_marginal():
    model, params, W, b = _linear_gaussian()
    params = _perturbed(params)
    reps = 4000
    x = jnp.asarray(np.repeat(X, reps, 0), jnp.float32)
    exact = _log_marginal(X, W, b)
    elbo = _closed_form_elbo(params, X, W, b)
    means = {}
    for i, k in enumerate((1, 5, 50)):
        log_w = model.log_weights(params, x, None, model.noise(jax.random.key(i), k, len(x)))
        if k == 1:
            np.testing.assert_array_equal(V.iwae_bound(log_w), log_w[0])
        bounds = np.asarray(V.iwae_bound(log_w), np.float64).reshape(2, reps)
        means[k] = bounds.mean(1)
        se = bounds.std(1) / math.sqrt(reps)
        if k == 1:  # L_1 is the ELBO
            np.testing.assert_array_less(np.abs(means[1] - elbo), 4 * se + 1e-4)
    assert np.all(elbo < means[5]) and np.all(means[5] < means[50])
    assert np.all(means[50] < exact + 1e-3) and np.all(exact - means[50] < 0.5 * (exact - elbo))
    # the analytic-KL form of the ELBO: E_q log p(x | z) - KL, averaged over its samples
    rec, kl = model.elbo_terms(params, x, None, model.noise(jax.random.key(9), 8, len(x)))
    analytic = np.asarray(rec - jnp.sum(kl, -1), np.float64).reshape(2, reps).mean(1)
    np.testing.assert_allclose(analytic, elbo, atol=0.02)


def test_importance_sampling_reaches_the_exact_marginal_likelihood():
    model, params, W, b = _linear_gaussian()
    params = _perturbed(params, scale=0.5, wider=True)
    x = jnp.asarray(X, jnp.float32)

    def log_weights(key, n):
        z, means = model.sample_q(params["encoder"], x, None, model.noise(key, n, 2))
        return (model.log_joint(params["decoder"], x, None, z)
                - model.log_q(params["encoder"], x, None, z)), means

    result = jax.jit(lambda k: V.importance_sampled(log_weights, k, 20_000, 1000))(
        jax.random.key(0))
    exact = _log_marginal(X, W, b)
    np.testing.assert_allclose(result.log_px, exact, atol=0.01)
    np.testing.assert_allclose(result.elbo, _closed_form_elbo(params, X, W, b), atol=0.05)
    enc = params["encoder"]["out"]
    np.testing.assert_allclose(result.posterior_mean,
                               (x @ enc["kernel"] + enc["bias"])[:, :d], rtol=1e-5, atol=1e-5)


def test_importance_sampling_in_chunks_is_the_logsumexp_of_all_the_samples():
    model, params, _, _ = _linear_gaussian()
    params = _perturbed(params)
    x = jnp.asarray(X, jnp.float32)

    def log_weights(key, n):
        return model.log_weights(params, x, None, model.noise(key, n, 2)), (jnp.zeros((1, 2, 1)),)

    key = jax.random.key(3)
    chunked = V.importance_sampled(log_weights, key, 60, 20)
    every = jnp.concatenate([log_weights(jax.random.fold_in(key, i), 20)[0] for i in range(3)])
    np.testing.assert_allclose(chunked.log_px, V.iwae_bound(every), rtol=1e-6)
    np.testing.assert_allclose(chunked.elbo, jnp.mean(every, 0), rtol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        V.importance_sampled(log_weights, key, 50, 20)


def test_dreg_is_unbiased_for_the_iwae_gradient_with_lower_variance():
    model, params, _, _ = _linear_gaussian()
    params = _perturbed(params)
    k, n = 5, 20_000
    x = jnp.asarray(X[:1], jnp.float32)

    def iwae_grad(eps):
        return jax.grad(lambda p: jnp.mean(V.iwae_bound(model.log_weights(p, x, None, eps))))(
            params)

    def dreg_grad(eps):
        enc, dec = params["encoder"], params["decoder"]
        _, g_dec, g_enc = V.dreg_gradients(
            lambda phi, e: model.sample_q(phi, x, None, e)[0],
            lambda theta, z: model.log_joint(theta, x, None, z) - model.log_q(enc, x, None, z),
            enc, dec, eps)
        return {"encoder": g_enc, "decoder": g_dec}

    noise = model.noise(jax.random.key(0), k * n, 1)
    eps = jax.tree.map(lambda a: a.reshape(n, k, 1, -1), noise)
    g_i = jax.jit(jax.vmap(iwae_grad))(eps)
    g_d = jax.jit(jax.vmap(dreg_grad))(eps)
    np.testing.assert_allclose(g_d["decoder"]["out"]["kernel"], g_i["decoder"]["out"]["kernel"],
                               rtol=1e-4, atol=1e-5)  # the decoder's estimator is the same
    for leaf_i, leaf_d in zip(jax.tree.leaves(g_i["encoder"]), jax.tree.leaves(g_d["encoder"]),
                              strict=True):
        a, b = np.asarray(leaf_i, np.float64), np.asarray(leaf_d, np.float64)
        se = np.sqrt((a.var(0) + b.var(0)) / n)
        np.testing.assert_array_less(np.abs(a.mean(0) - b.mean(0)), 5 * se + 1e-6)
        assert b.var(0).sum() < a.var(0).sum()


def test_gaussian_kl_matches_a_float64_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=6) * 2, rng.normal(size=6)
    kl = np.asarray(V.gaussian_kl(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std,
                                                                              jnp.float32)))
    z = mean + np.exp(log_std) * rng.normal(size=(400_000, 6))
    log_q = -0.5 * ((z - mean) / np.exp(log_std)) ** 2 - log_std
    log_p = -0.5 * z**2
    samples = log_q - log_p
    np.testing.assert_array_less(np.abs(kl - samples.mean(0)),
                                 4 * samples.std(0) / math.sqrt(len(z)) + 1e-5)
    lp = np.asarray(V.gaussian_log_prob(jnp.float32(0.5), jnp.float32(1.0), jnp.float32(-0.5)))
    assert math.isclose(lp, -0.5 * (0.5 / math.exp(-0.5)) ** 2 + 0.5 - 0.5 * math.log(
        2 * math.pi), rel_tol=1e-5)


def test_free_bits_warmup_and_elbo_loss():
    kl = jnp.asarray([[0.1, 0.2, 3.0, 0.0], [0.3, 0.0, 1.0, 0.5]])
    np.testing.assert_allclose(V.group_kl(kl, 2), [[0.3, 3.0], [0.3, 1.5]], rtol=1e-6)
    # per-group batch means 0.3 and 2.25; lambda = 1 lifts the first to 1
    assert math.isclose(float(V.free_bits_kl(kl, 1.0, 2)), 1.0 + 2.25, rel_tol=1e-6)
    assert math.isclose(float(V.free_bits_kl(kl, 0.0, 2)), 2.55, rel_tol=1e-6)
    assert math.isclose(float(V.free_bits_kl(kl, 0.5, 4)), 0.5 + 0.5 + 2.0 + 0.5, rel_tol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        V.group_kl(kl, 3)
    assert float(V.kl_weight(50, 0.5, 200)) == 0.125 and float(V.kl_weight(500, 0.5, 200)) == 0.5
    assert float(V.kl_weight(0, 2.0, 0)) == 2.0
    rec = jnp.asarray([-10.0, -12.0])
    loss, parts = V.elbo_loss(rec, kl, 0.5, 1.0, 2)
    assert math.isclose(float(loss), 11.0 + 0.5 * 3.25, rel_tol=1e-6)
    assert math.isclose(float(parts["elbo"]), -11.0 - 2.55, rel_tol=1e-6)


def test_active_units_counts_the_units_whose_posterior_mean_varies():
    rng = np.random.default_rng(0)
    means = np.stack([rng.normal(size=5000), 0.05 * rng.normal(size=5000),
                      0.2 * rng.normal(size=5000) + 3.0], 1)
    assert V.active_units(means.mean(0), (means**2).mean(0)) == 2  # var 1, 0.0025, 0.04
    assert V.active_units(means.mean(0), (means**2).mean(0), threshold=0.05) == 1


def test_two_layer_model_terms_are_consistent():
    model = V.two_layer_vae(V.bernoulli((6,)), (4, 2), hidden=(8,), hidden2=(8,))
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (3, 6)), jnp.float32)
    params = model.init(jax.random.key(0), x)
    eps = model.noise(jax.random.key(1), 7, 3)
    log_w = model.log_weights(params, x, None, eps)
    z, means = model.sample_q(params["encoder"], x, None, eps)
    np.testing.assert_allclose(log_w, model.log_joint(params["decoder"], x, None, z)
                               - model.log_q(params["encoder"], x, None, z), rtol=1e-5)
    assert [a.shape for a in z] == [(7, 3, 4), (7, 3, 2)] and means[0].shape == (1, 3, 4)
    rec, kl = model.elbo_terms(params, x, None, eps)
    assert rec.shape == (3,) and kl.shape == (3, 6)
    assert model.sample(params["decoder"], jax.random.key(2), 5).shape == (5, 6)
