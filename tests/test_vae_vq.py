"""The VQ-VAE's quantizer, codebook statistics and PixelCNN prior against NumPy references,
and the conv encoder/decoder shapes they sit between."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import vae as V
from gen.nn import ConvDecoder, ConvEncoder


def test_nearest_code_matches_brute_force():
    rng = np.random.default_rng(0)
    z, codebook = rng.normal(size=(2, 5, 7, 3)), rng.normal(size=(11, 3))
    idx = np.asarray(V.nearest_code(jnp.asarray(z, jnp.float32), jnp.asarray(codebook,
                                                                              jnp.float32)))
    ref = np.argmin(((z[..., None, :] - codebook) ** 2).sum(-1), -1)
    np.testing.assert_array_equal(idx, ref)


def test_straight_through_and_the_two_vq_losses_route_their_gradients():
    z_e, z_q = jnp.asarray([[1.0, 2.0]]), jnp.asarray([[1.5, 1.0]])
    out = V.straight_through(z_e, z_q)
    np.testing.assert_array_equal(out, z_q)
    g = jax.grad(lambda a: jnp.sum(V.straight_through(a, z_q) ** 3))(z_e)
    np.testing.assert_allclose(g, 3 * z_q**2)  # d/dz_e is the decoder's gradient at z_q
    commit, codebook = V.vq_losses(z_e, z_q)
    assert math.isclose(float(commit), (0.25 + 1.0) / 2) and float(codebook) == float(commit)
    g_e, g_q = jax.grad(lambda a, b: V.vq_losses(a, b)[0], argnums=(0, 1))(z_e, z_q)
    np.testing.assert_allclose(g_e, z_e - z_q)  # commitment moves the encoder only
    assert not np.any(g_q)
    g_e, g_q = jax.grad(lambda a, b: V.vq_losses(a, b)[1], argnums=(0, 1))(z_e, z_q)
    assert not np.any(g_e) and np.allclose(g_q, z_q - z_e)


def test_ema_update_matches_a_float64_recomputation():
    rng = np.random.default_rng(1)
    K, Dm, N, decay, eps = 5, 3, 40, 0.9, 1e-5
    state = V.CodebookState(*(jnp.asarray(a, jnp.float32) for a in (
        rng.normal(size=(K, Dm)), rng.uniform(1, 5, K), rng.normal(size=(K, Dm)))))
    z, idx = rng.normal(size=(N, Dm)), rng.integers(0, K - 1, N)  # code K-1 unused
    new = V.ema_update(state, jnp.asarray(z, jnp.float32), jnp.asarray(idx), decay, eps)
    onehot = np.eye(K)[idx]
    count = decay * np.asarray(state.count, np.float64) + (1 - decay) * onehot.sum(0)
    total = decay * np.asarray(state.total, np.float64) + (1 - decay) * onehot.T @ z
    n = count.sum()
    smoothed = (count + eps) / (n + K * eps) * n
    np.testing.assert_allclose(new.count, count, rtol=1e-5)
    np.testing.assert_allclose(new.total, total, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.embedding, total / smoothed[:, None], rtol=1e-5, atol=1e-6)
    usage_only = V.ema_update(state, jnp.asarray(z, jnp.float32), jnp.asarray(idx), decay,
                              update_embedding=False)
    np.testing.assert_array_equal(usage_only.embedding, state.embedding)


def test_dead_codes_restart_at_encoder_outputs_and_live_ones_stay():
    z = jnp.arange(30.0).reshape(10, 3)
    state = V.init_codebook(jax.random.key(0), z, 4)
    assert np.allclose(state.count, 2.5) and np.allclose(state.total, state.embedding * 2.5)
    state = state._replace(count=jnp.asarray([3.0, 0.01, 4.0, 0.05]))
    new, n = V.restart_dead_codes(jax.random.key(1), state, z, 0.03)  # below 0.03 * 1.765
    assert int(n) == 2
    np.testing.assert_array_equal(new.embedding[jnp.asarray([0, 2])],
                                  state.embedding[jnp.asarray([0, 2])])
    for j in (1, 3):
        assert any(np.array_equal(new.embedding[j], row) for row in np.asarray(z))
    assert float(new.count[1]) == pytest.approx(float(jnp.mean(state.count)))


def test_perplexity_and_code_frequencies():
    assert float(V.perplexity(jnp.full(8, 0.125))) == pytest.approx(8.0)
    assert float(V.perplexity(jnp.asarray([0.0, 1.0, 0.0]))) == pytest.approx(1.0)
    freqs = V.code_frequencies(jnp.asarray([[0, 1], [1, 1]]), 3)
    np.testing.assert_allclose(freqs, [0.25, 0.75, 0.0])
    p = np.array([0.25, 0.75])
    assert float(V.perplexity(freqs)) == pytest.approx(math.exp(-(p * np.log(p)).sum()), 1e-6)


def test_pixelcnn_prior_is_causal_and_its_log_prob_and_samples_are_right():
    prior = V.PixelCNNPrior(num_codes=6, features=8, num_layers=2)
    rng = np.random.default_rng(0)
    codes = jnp.asarray(rng.integers(0, 6, (2, 3, 4)), jnp.int32)
    params = prior.init(jax.random.key(0), codes)
    logits = prior.apply(params, codes)
    flat = codes.reshape(2, -1)
    for j in range(12):  # a change at position j reaches every later position, no earlier one
        changed = prior.apply(params, flat.at[:, j].set((flat[:, j] + 1) % 6).reshape(
            codes.shape)).reshape(2, 12, 6)
        same = np.all(np.isclose(changed, logits.reshape(2, 12, 6), rtol=1e-5, atol=1e-6),
                      axis=(0, 2))
        np.testing.assert_array_equal(same, np.arange(12) <= j)
    lp = np.asarray(V.code_log_prob(logits, codes))
    ls = np.asarray(jax.nn.log_softmax(logits), np.float64)
    ref = np.take_along_axis(ls, np.asarray(codes)[..., None], -1).sum((1, 2, 3))
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    drawn = V.sample_codes(lambda c: prior.apply(params, c), jax.random.key(1), 5, (3, 4))
    assert drawn.shape == (5, 3, 4) and drawn.dtype == jnp.int32
    assert int(drawn.min()) >= 0 and int(drawn.max()) < 6


@pytest.mark.parametrize("size", [8, 28, 32])
def test_conv_encoder_and_decoder_round_trip_the_shape(size):
    enc = ConvEncoder(channels=(4, 8), num_res_blocks=1)
    x = jnp.zeros((2, size, size, 3))
    h, _ = enc.init_with_output(jax.random.key(0), x)
    small = math.ceil(math.ceil(size / 2) / 2)
    assert h.shape == (2, small, small, 8)
    dec = ConvDecoder(out_shape=(size, size, 5), channels=(4, 8), num_res_blocks=1)
    out, _ = dec.init_with_output(jax.random.key(1), h)
    assert out.shape == (2, size, size, 5) and out.dtype == jnp.float32
