"""Dequantization bounds, logit preprocessing and the bits/dim convention.

The reference for the bounds is a two-pixel image with 4 levels under a correlated Gaussian model,
whose exact discrete likelihood ``P(x) = int_{[0,1)^2} p(x + u) du`` is computed by quadrature.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gen import flows
from gen.data.preprocess import make_preprocess
from gen.data.source import DataSpec
from gen.flows import registry

LEVELS = 4
SHAPE = (1, 2, 1)
MEAN = np.array([0.45, 0.55])
COV = 0.12**2 * np.array([[1.0, 0.8], [0.8, 1.0]])
ICOV = np.linalg.inv(COV)
LOG_Z = 0.5 * math.log(np.linalg.det(2 * np.pi * COV))
PIXELS = np.stack(np.meshgrid(np.arange(LEVELS), np.arange(LEVELS), indexing="ij"), -1)
PIXELS = PIXELS.reshape(-1, *SHAPE).astype(np.float32)  # all 16 images


def gaussian_log_prob(y: jax.Array) -> jax.Array:
    """The model density on model space y = (x + u) / LEVELS, a correlated 2-D Gaussian."""
    d = y.reshape(-1) - MEAN
    return -0.5 * d @ jnp.asarray(ICOV, d.dtype) @ d - LOG_Z


@functools.cache
def exact() -> tuple[np.ndarray, np.ndarray]:
    """(log P(x), E_uniform[log p(x + u)]) per image, by midpoint quadrature on a 400^2 grid."""
    g = (np.arange(400) + 0.5) / 400
    u = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    log_p, e_log = [], []
    for x in PIXELS:
        d = (x.reshape(2) + u) / LEVELS - MEAN
        lp = -0.5 * np.einsum("ni,ij,nj->n", d, ICOV, d) - LOG_Z + 2 * math.log(1 / LEVELS)
        log_p.append(np.log(np.mean(np.exp(lp))))
        e_log.append(lp.mean())
    return np.array(log_p), np.array(e_log)


def batched_bound(deq, params, num_draws: int, key, num_samples: int = 1):
    """Bounds of shape (num_draws, 16): every image, num_draws independent keys each."""
    bound = functools.partial(
        flows.log_likelihood_bound, gaussian_log_prob, deq, num_levels=LEVELS,
        num_samples=num_samples,
    )
    keys = jax.random.split(key, num_draws * len(PIXELS)).reshape(num_draws, len(PIXELS))
    one = lambda p, x, k: bound(p, x, k)
    return jax.vmap(lambda ks: jax.vmap(one, (None, 0, 0))(params, jnp.asarray(PIXELS), ks))(
        keys
    )


def test_quadrature_reference_is_a_distribution():
    log_p, e_log = exact()
    np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, atol=2e-3)  # mass outside [0,1)^2
    assert np.all(log_p - e_log > 0.5)  # a sizeable Jensen gap for uniform dequantization


def test_uniform_bound_is_below_exact_and_tightens_with_importance_samples():
    log_p, e_log = exact()
    deq = flows.uniform_dequantizer()
    run = jax.jit(batched_bound, static_argnums=(0, 2, 4))
    b1 = np.asarray(run(deq, (), 400, jax.random.key(0)))
    se = b1.std(0) / math.sqrt(b1.shape[0])
    # An unbiased estimate of E_u[log p(x + u)] + D log a, the exact uniform bound.
    np.testing.assert_allclose(b1.mean(0), e_log, atol=5 * se.max() + 1e-3)
    assert np.all(b1.mean(0) < log_p)
    # Importance weighting: E[bound_K] increases with K towards log P(x), never above it.
    b64 = np.asarray(run(deq, (), 64, jax.random.key(1), 64))
    se64 = b64.std(0) / math.sqrt(b64.shape[0])
    assert np.all(b64.mean(0) > b1.mean(0) + 0.5)
    assert np.all(b64.mean(0) <= log_p + 4 * se64 + 1e-2), (b64.mean(0) - log_p, se64)
    b4096 = np.asarray(run(deq, (), 4, jax.random.key(2), 4096)).mean(0)
    np.testing.assert_allclose(b4096, log_p, atol=0.25)


def test_variational_bound_is_below_exact_and_beats_uniform_after_training():
    log_p, e_log = exact()
    deq = flows.variational_dequantizer(
        SHAPE, num_steps=2, hidden_channels=8, num_blocks=1, num_levels=LEVELS, num_groups=None
    )
    params = deq.init(jax.random.key(0), PIXELS[0])
    tx = optax.adam(1e-2)

    @jax.jit
    def train(params, key):
        def step(carry, k):
            params, state = carry
            loss, grads = jax.value_and_grad(
                lambda p: -jnp.mean(batched_bound(deq, p, 4, k))
            )(params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        keys = jax.random.split(key, 80)
        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), keys)
        return params, losses, batched_bound(deq, params, 300, jax.random.key(9))

    params, losses, b = jax.tree.map(np.asarray, train(params, jax.random.key(1)))
    assert np.all(np.isfinite(losses)) and losses[-10:].mean() < losses[:5].mean()
    se = b.std(0) / math.sqrt(b.shape[0])
    # A lower bound for every image, up to Monte Carlo error ...
    assert np.all(b.mean(0) <= log_p + 4 * se + 1e-3), (b.mean(0) - log_p, se)
    # ... and much tighter than uniform dequantization (mean gap ~8 nats; trained: ~0.2).
    gap_q, gap_uniform = (log_p - b.mean(0)).mean(), (log_p - e_log).mean()
    assert gap_q < 0.1 * gap_uniform, (gap_q, gap_uniform)


def test_variational_dequantizer_starts_uniform():
    """Logistic base and identity layers: q is U[0,1)^D, so the bound is the uniform one."""
    shape = (2, 2, 3)
    deq = flows.variational_dequantizer(shape, num_steps=3, hidden_channels=8, num_groups=4)
    x = jax.random.randint(jax.random.key(0), shape, 0, 256).astype(jnp.float32)
    lp = lambda y: -jnp.sum(jnp.square(y - 0.3)) * 3.0
    key = jax.random.key(2)

    @jax.jit
    def run(x):
        params = deq.init(jax.random.key(1), x)
        u, log_q = deq.sample_and_log_prob(params, key, x)
        b_var = flows.log_likelihood_bound(lp, deq, params, x, key)
        b_uni = flows.log_likelihood_bound(lp, flows.uniform_dequantizer(), (), x, key)
        return u, log_q, b_var, b_uni

    u, log_q, b_var, b_uni = run(x)
    np.testing.assert_allclose(u, jax.random.uniform(key, shape), atol=1e-5)
    np.testing.assert_allclose(log_q, 0.0, atol=1e-4)
    np.testing.assert_allclose(b_var, b_uni, rtol=1e-6, atol=1e-4)


def test_variational_dequantizer_log_prob_and_gradients():
    shape = (2, 2, 1)
    deq = flows.variational_dequantizer(shape, num_steps=2, hidden_channels=8, num_groups=None,
                                        base="normal")
    x = jnp.array([[0.0, 255.0], [17.0, 128.0]])[..., None]
    params = registry.perturb(jax.jit(deq.init)(jax.random.key(0), x), seed=3)

    @jax.jit
    def run(params, x):
        u, log_q = deq.sample_and_log_prob(params, jax.random.key(1), x)
        bound = lambda p: flows.log_likelihood_bound(
            gaussian_log_prob_4, deq, p, x, jax.random.key(2)
        )
        return u, log_q, deq.log_prob(params, u, x), deq.log_prob(params, u, x + 1.0), jax.grad(
            bound
        )(params)

    u, log_q, log_q_again, log_q_other_x, grads = run(params, x)
    assert u.shape == shape and np.all((u > 0) & (u < 1))
    np.testing.assert_allclose(log_q_again, log_q, rtol=1e-4, atol=1e-4)
    # The density depends on x (the conditioner sees it).
    assert not np.allclose(log_q_other_x, log_q)
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves) and any(np.any(g != 0) for g in leaves)
    with pytest.raises(ValueError, match=r"expected one event of shape \(2, 2, 1\)"):
        deq.sample_and_log_prob(params, jax.random.key(1), x[None])


def gaussian_log_prob_4(y: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(jnp.square((y - 0.5) / 0.2))


@pytest.mark.parametrize("scale", ["unit", "symmetric"])
def test_uniform_bound_matches_the_train_loop_bits_per_dim(scale):
    """The loop dequantizes with preprocess and converts with Preprocess.bits_per_dim; the
    bound with the same u and the same model space gives the same bits/dim."""
    shape = (2, 2, 3)
    spec = DataSpec(shape, "image")
    pre = make_preprocess(spec, ml_collections.ConfigDict({"scale": scale}))
    x = jax.random.randint(jax.random.key(0), (5, *shape), 0, 256).astype(jnp.uint8)
    key = jax.random.key(1)
    y = pre.apply({"x": x}, key)["x"]  # a (x + u) + b with u ~ U[0,1) drawn from key
    a, b = (1 / 256, 0.0) if scale == "unit" else (2 / 256, -1.0)
    u = (np.asarray(y) - b) / a - np.asarray(x, np.float32)
    assert np.all((u > -1e-3) & (u < 1 + 1e-3))

    lp = lambda v: -0.5 * jnp.sum(jnp.square(v - 0.2)) - 0.1 * jnp.sum(v)

    # A dequantizer that returns the loop's u, so both sides see the same noise.
    fixed = flows.Dequantizer(
        init=lambda k, x: (),
        sample_and_log_prob=lambda p, k, x: (p, jnp.zeros(())),
        log_prob=lambda p, u, x: jnp.zeros(()),
    )
    bounds = jax.vmap(
        lambda uu, xx: flows.log_likelihood_bound(
            lp, fixed, uu, xx, key, scale=a, shift=b
        )
    )(jnp.asarray(u), jnp.asarray(x, jnp.float32))
    nll_model = -jax.vmap(lp)(y)
    np.testing.assert_allclose(
        flows.bits_per_dim(bounds, spec.dim), pre.bits_per_dim(nll_model, spec.dim), rtol=1e-4
    )


def test_bits_per_dim_convention():
    """A model uniform on [0,1)^D puts mass 256^-D on every 8-bit image: 8 bits/dim."""
    x = jnp.full((3, 2, 1), 200.0)
    ll = flows.log_likelihood_bound(
        lambda y: jnp.zeros(()), flows.uniform_dequantizer(), (), x, jax.random.key(0)
    )
    np.testing.assert_allclose(ll, -6 * math.log(256.0), rtol=1e-6)
    np.testing.assert_allclose(flows.bits_per_dim(ll, 6), 8.0, rtol=1e-6)
    u = jnp.full((3, 2, 1), 0.5)
    assert flows.uniform_dequantizer().log_prob((), u, x) == 0.0
    assert flows.uniform_dequantizer().log_prob((), u + 1.0, x) == -jnp.inf


def test_logit_preprocess_matches_numpy_and_inverts():
    alpha, low, high = 0.05, -1.0, 1.0
    b = flows.logit_preprocess(alpha, low, high, event_shape=(3, 4))
    y = np.asarray(jax.random.uniform(jax.random.key(0), (3, 4), minval=-1.0, maxval=1.0))
    t, ldj = b.inverse((), jnp.asarray(y))
    p = alpha + (1 - 2 * alpha) * (y - low) / (high - low)
    np.testing.assert_allclose(t, np.log(p / (1 - p)), rtol=1e-5, atol=1e-6)
    dp_dy = (1 - 2 * alpha) / (high - low)
    expected = np.sum(np.log(dp_dy / (p * (1 - p))))
    np.testing.assert_allclose(ldj, expected, rtol=1e-5)
    y_back, ldj_f = b.forward((), t)
    np.testing.assert_allclose(y_back, y, atol=1e-5)
    np.testing.assert_allclose(ldj_f, -ldj, rtol=1e-5)
    # Out of the domain: clipped, finite, zero gradient; never NaN.
    bad = jnp.array([[-50.0, 50.0, jnp.inf, -jnp.inf]] * 3)
    t, ldj = b.inverse((), bad)
    assert np.all(np.isfinite(t)) and np.isfinite(ldj)
    g = jax.grad(lambda v: jnp.sum(b.inverse((), v)[0]) + b.inverse((), v)[1])(bad)
    np.testing.assert_array_equal(g, 0.0)
    with pytest.raises(ValueError, match=r"expected one event of shape \(3, 4\)"):
        b.inverse((), jnp.zeros((2, 3, 4)))


def test_factory_validation():
    with pytest.raises(ValueError, match="alpha"):
        flows.logit_preprocess(0.5)
    with pytest.raises(ValueError, match="high > low"):
        flows.logit_preprocess(0.05, 1.0, 0.0)
    with pytest.raises(ValueError, match="num_samples"):
        flows.log_likelihood_bound(
            lambda y: 0.0, flows.uniform_dequantizer(), (), jnp.zeros(2), jax.random.key(0),
            num_samples=0,
        )
    with pytest.raises(ValueError, match="base"):
        flows.variational_dequantizer((2, 2, 1), base="gaussian")
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        flows.variational_dequantizer((4, 4))


@pytest.mark.slow  # the dequantizer's density and gradients are tested above, in-process
def test_variational_dequantization_trains_in_the_flow_task(tmp_path):
    """glow_digits with model.dequantizer='variational': the bound is trained and reported."""
    from pathlib import Path

    from gen.config import load_config_file
    from gen.errors import ConfigError
    from gen.models import build_task
    from gen.train import loop

    path = Path(__file__).parents[1] / "experiments" / "configs" / "glow_digits.py"
    config = load_config_file(path)
    config.num_steps, config.batch_size, config.eval_batch_size = 3, 16, 16
    config.log_every = config.checkpoint_every = config.eval_every = 3
    config.num_eval_examples, config.num_samples = 16, 4
    config.model.update(num_steps=1, hidden_channels=8, num_blocks=1, num_groups=4,
                        dequantizer="variational", deq_steps=1, deq_hidden_channels=8,
                        deq_eval_samples=2)
    with pytest.raises(ConfigError, match=r"data\.dequantize='none'"):
        loop.train_and_evaluate(config, tmp_path / "bad", build_task)
    config.data.dequantize = "none"
    result = loop.train_and_evaluate(config, tmp_path / "run", build_task)
    assert result.status == "done" and result.step == 3
    # The bound in 8-bit bits/dim: positive, and near 8 for a model that starts near uniform.
    assert 0.0 < result.eval["test_bpd"] < 12.0
    assert list((tmp_path / "run" / "samples").glob("*.png"))
