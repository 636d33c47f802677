"""GAN losses against their formulas on fixed logits, with the signs of both players' gradients,
and the gradient penalties against float64 recomputations and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.errors import ConfigError
from gen.gan import losses, penalties

REAL = np.array([2.0, -1.0, 0.5, 0.0])
FAKE = np.array([-1.5, 0.3, 1.0, -0.2])


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name -> (D loss, G loss, dD/dreal, dD/dfake, dG/dfake), in float64, per example before the mean
FORMULAS = {
    "non_saturating": (
        lambda r, f: softplus(-r).mean() + softplus(f).mean(),
        lambda f: softplus(-f).mean(),
        lambda r: -sigmoid(-r), lambda f: sigmoid(f), lambda f: -sigmoid(-f)),
    "minimax": (
        lambda r, f: softplus(-r).mean() + softplus(f).mean(),
        lambda f: -softplus(f).mean(),
        lambda r: -sigmoid(-r), lambda f: sigmoid(f), lambda f: -sigmoid(f)),
    "wasserstein": (
        lambda r, f: f.mean() - r.mean(),
        lambda f: -f.mean(),
        lambda r: -np.ones_like(r), lambda f: np.ones_like(f), lambda f: -np.ones_like(f)),
    "hinge": (
        lambda r, f: np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean(),
        lambda f: -f.mean(),
        lambda r: -1.0 * (r < 1.0), lambda f: 1.0 * (f > -1.0), lambda f: -np.ones_like(f)),
    "least_squares": (
        lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
        lambda f: 0.5 * ((f - 1) ** 2).mean(),
        lambda r: r - 1, lambda f: f, lambda f: f - 1),
}


def test_every_loss_has_a_formula():
    assert set(FORMULAS) == set(losses.LOSSES)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_loss_values_and_gradients_match_the_formula(name):
    fn = losses.get_loss(name)
    d_ref, g_ref, dd_real, dd_fake, dg_fake = FORMULAS[name]
    out = fn(jnp.asarray(REAL, jnp.float32), jnp.asarray(FAKE, jnp.float32))
    np.testing.assert_allclose(float(out.discriminator), d_ref(REAL, FAKE), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(out.generator), g_ref(FAKE), rtol=1e-6, atol=1e-6)

    n = len(REAL)
    gr, gf = jax.grad(lambda r, f: fn(r, f).discriminator, argnums=(0, 1))(
        jnp.asarray(REAL), jnp.asarray(FAKE))
    np.testing.assert_allclose(gr, dd_real(REAL) / n, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gf, dd_fake(FAKE) / n, rtol=1e-5, atol=1e-7)
    gg_real, gg_fake = jax.grad(lambda r, f: fn(r, f).generator, argnums=(0, 1))(
        jnp.asarray(REAL), jnp.asarray(FAKE))
    np.testing.assert_allclose(gg_fake, dg_fake(FAKE) / n, rtol=1e-5, atol=1e-7)
    # no generator loss looks at the real data
    np.testing.assert_array_equal(gg_real, 0.0)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_gradient_signs_push_each_player_its_own_way(name):
    """Gradient descent on D raises its real scores and lowers its fake ones (where the loss
    still cares); descent on G raises D's score of its samples, except least squares, which
    pulls it toward its target 1."""
    fn = losses.get_loss(name)
    # real scores too low and fake ones too high for every loss: each still has a gradient
    low, high = jnp.full(3, -0.5), jnp.full(3, 0.5)
    gr, gf = jax.grad(lambda r, f: fn(r, f).discriminator, argnums=(0, 1))(low, high)
    assert (gr < 0).all() and (gf > 0).all()
    gg = jax.grad(lambda f: fn(jnp.zeros(3), f).generator)(high)
    assert (gg < 0).all()
    if name == "least_squares":
        assert (jax.grad(lambda f: fn(jnp.zeros(3), f).generator)(jnp.full(3, 2.0)) > 0).all()
    if name == "hinge":  # satisfied margins give no gradient
        gr, gf = jax.grad(lambda r, f: fn(r, f).discriminator, argnums=(0, 1))(
            jnp.full(3, 1.5), jnp.full(3, -1.5))
        assert (gr == 0).all() and (gf == 0).all()


def test_saturation_is_what_tells_minimax_from_non_saturating():
    very_fake = jnp.full(2, -10.0)  # D is sure: G's early regime
    ns = jax.grad(lambda f: losses.non_saturating(jnp.zeros(2), f).generator)(very_fake)
    mm = jax.grad(lambda f: losses.minimax(jnp.zeros(2), f).generator)(very_fake)
    assert float(jnp.abs(ns).min()) > 0.49 and float(jnp.abs(mm).max()) < 1e-4


def test_losses_are_finite_for_extreme_logits():
    big = jnp.array([1e4, -1e4, 80.0, -80.0])
    for fn in losses.LOSSES.values():
        out = fn(big, -big)
        grads = jax.grad(lambda r, f, fn=fn: fn(r, f).discriminator, argnums=(0, 1))(big, -big)
        assert np.isfinite(out.discriminator) and np.isfinite(out.generator)
        assert all(np.isfinite(g).all() for g in grads)


def test_weight_clipping_bounds_every_weight():
    params = {"a": jnp.array([-1.0, 0.005, 2.0]), "b": {"c": jnp.array([[0.5]])}}
    clipped = losses.clip_weights(params, 0.01)
    np.testing.assert_allclose(clipped["a"], [-0.01, 0.005, 0.01])
    np.testing.assert_allclose(clipped["b"]["c"], [[0.01]])


def test_unknown_names_and_bad_weights_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"model\.loss='wgan' is not a GAN loss; use one of"):
        losses.get_loss("wgan")
    with pytest.raises(ConfigError, match=r"model\.penalty='gp' is not a penalty; use one of"):
        penalties.get_penalty("gp", 10.0)
    with pytest.raises(ConfigError, match=r"model\.penalty_weight must be a number >= 0"):
        penalties.get_penalty("r1", -1.0)
    assert penalties.get_penalty("none", 10.0) is None
    assert penalties.get_penalty("r1", 0.0) is None


# --- penalties --------------------------------------------------------------------------------

W = np.array([0.7, -1.3, 0.4])


def sine_critic(x):
    """``D(x) = sin(x . w)``: its input gradient ``cos(x . w) w`` is known in closed form."""
    return jnp.sin(x.reshape(len(x), -1) @ jnp.asarray(W, x.dtype))


def grad_norms_f64(x):
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.abs(np.cos(x @ W)) * np.linalg.norm(W)


@pytest.fixture
def batches():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32))


def test_wgan_gp_on_interpolates_matches_float64(batches):
    real, fake = batches
    key = jax.random.key(3)
    got = penalties.wgan_gp(sine_critic, jnp.asarray(real), jnp.asarray(fake), key)
    eps = np.asarray(jax.random.uniform(key, (6, 1), jnp.float32), np.float64)
    x_hat = eps * real + (1 - eps) * fake
    want = np.mean((grad_norms_f64(x_hat) - 1.0) ** 2)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    assert 0 < eps.min() and eps.max() < 1 and np.unique(eps).size == 6  # one e per example


def test_r1_and_r2_match_float64(batches):
    real, fake = batches
    key = jax.random.key(0)
    r1 = penalties.r1(sine_critic, jnp.asarray(real), jnp.asarray(fake), key)
    r2 = penalties.r2(sine_critic, jnp.asarray(real), jnp.asarray(fake), key)
    np.testing.assert_allclose(float(r1), 0.5 * np.mean(grad_norms_f64(real) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(r2), 0.5 * np.mean(grad_norms_f64(fake) ** 2), rtol=1e-5)
    weighted = penalties.get_penalty("r1", 10.0)(sine_critic, jnp.asarray(real),
                                                 jnp.asarray(fake), key)
    np.testing.assert_allclose(float(weighted), 10.0 * float(r1), rtol=1e-6)


def test_penalties_on_images_use_each_examples_whole_gradient():
    """An MLP critic on (B, 4, 4, 2) inputs: the squared gradient norms against central
    finite differences, example by example."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    w1 = jax.random.normal(k1, (32, 8)) / 4
    w2 = jax.random.normal(k2, (8,))

    def critic(x):
        return jnp.tanh(x.reshape(len(x), -1) @ w1) @ w2

    x = jax.random.normal(k3, (3, 4, 4, 2))
    got = float(penalties.r1(critic, x, x, k1))
    h = 1e-2
    norms = []
    for i in range(3):
        sq = 0.0
        for j in range(32):
            e = jnp.zeros(32).at[j].set(h).reshape(4, 4, 2)
            up = float(critic(x[i:i + 1] + e)[0])
            down = float(critic(x[i:i + 1] - e)[0])
            sq += ((up - down) / (2 * h)) ** 2
        norms.append(sq)
    np.testing.assert_allclose(got, 0.5 * np.mean(norms), rtol=2e-3)


def test_penalty_gradients_are_finite_even_where_the_input_gradient_vanishes():
    real = jnp.zeros((4, 3))

    def objective(scale):
        critic = lambda x: scale * jnp.sum(x, axis=1) * 0.0  # a flat critic: grad D(x) = 0
        return penalties.wgan_gp(critic, real, real, jax.random.key(0))

    value, grad = jax.value_and_grad(objective)(1.0)
    assert float(value) == pytest.approx(1.0, abs=1e-5) and np.isfinite(grad)
