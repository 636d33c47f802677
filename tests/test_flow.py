"""Base distributions and flows: densities against closed forms, sampling, normalization."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy import stats

from gen import flows
from gen.flows import registry


def keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


@pytest.mark.parametrize(
    "make, reference",
    [
        (flows.standard_normal, lambda p, x: jnp.sum(stats.norm.logpdf(x))),
        (
            flows.diag_normal,
            lambda p, x: jnp.sum(
                stats.norm.logpdf(x, p["loc"], jnp.exp(p["log_scale"]))  # scale = std
            ),
        ),
        (flows.logistic, lambda p, x: jnp.sum(stats.logistic.logpdf(x))),
    ],
)
def test_distributions(make, reference):
    base = make((2, 3))
    params = registry.perturb(base.init(jax.random.key(0), (2, 3)), seed=0, scale=0.5)
    x = registry.signed(0, (2, 3))
    np.testing.assert_allclose(base.log_prob(params, x), reference(params, x), rtol=1e-5)
    samples = jax.vmap(base.sample, in_axes=(None, 0))(params, keys(4000))
    assert samples.shape == (4000, 2, 3) and np.all(np.isfinite(samples))
    # Sample mean matches the distribution's (location 0 unless learned).
    loc = params["loc"] if isinstance(params, dict) else 0.0
    np.testing.assert_allclose(samples.mean(0), loc + 0 * x, atol=0.15)
    with pytest.raises(ValueError, match=r"event shape \(2, 3\)"):
        base.init(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match=r"expected one event of shape \(2, 3\)"):
        base.log_prob(params, x[0])


def test_flow_log_prob_matches_closed_form_gaussian():
    """z ~ N(0, I), y = P L U z + b  =>  y ~ N(b, W W^T) with W = P L U."""
    dim, perm = 3, np.array([2, 0, 1])
    flow = flows.make_flow(
        flows.standard_normal(dim), flows.chain(flows.lu_linear(dim, perm), flows.shift())
    )
    params = registry.perturb(flow.init(jax.random.key(0), jnp.zeros(dim)), seed=3, scale=0.5)
    lu = params["bijector"][0]
    lower = jnp.tril(lu["lower"], -1) + jnp.eye(dim)
    upper = jnp.triu(lu["upper"], 1) + jnp.diag(jnp.exp(lu["log_s"]))
    w = (lower @ upper)[perm]
    mean, cov = params["bijector"][1]["shift"], w @ w.T
    xs = jax.random.normal(jax.random.key(1), (10, dim)) * 2.0
    got = jax.jit(jax.vmap(flow.log_prob, in_axes=(None, 0)))(params, xs)
    want = jax.jit(stats.multivariate_normal.logpdf)(xs, mean, cov)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_flow_with_learned_base_and_elementwise_bijector():
    """x ~ N(loc, s^2), y = x exp(a) + b  =>  y ~ N(loc exp(a) + b, (s exp(a))^2)."""
    flow = flows.make_flow(flows.diag_normal(4), flows.affine())
    params = registry.perturb(flow.init(jax.random.key(0), jnp.zeros(4)), seed=4, scale=0.5)
    base, aff = params["base"], params["bijector"]
    mean = base["loc"] * jnp.exp(aff["log_scale"]) + aff["shift"]
    std = jnp.exp(base["log_scale"] + aff["log_scale"])
    y = registry.signed(1, (4,))
    want = jnp.sum(stats.norm.logpdf(y, mean, std))
    np.testing.assert_allclose(flow.log_prob(params, y), want, rtol=1e-5)
    _, lp = flow.sample_and_log_prob(params, jax.random.key(2))
    assert np.isfinite(lp)


def _realnvp_2d(context_dim=None):
    flow = flows.realnvp(2, num_layers=4, hidden=(16,), context_dim=context_dim)
    ctx = None if context_dim is None else jnp.ones(context_dim)
    params = flow.init(jax.random.key(0), jnp.zeros(2), ctx)
    return flow, registry.perturb(params, seed=5, scale=0.3)


def test_realnvp_density_integrates_to_one():
    flow, params = _realnvp_2d()
    lim, n = 9.0, 300
    grid = jnp.linspace(-lim, lim, n)
    xs = jnp.stack(jnp.meshgrid(grid, grid), -1).reshape(-1, 2)
    log_p = jax.jit(jax.vmap(flow.log_prob, in_axes=(None, 0)))(params, xs)
    cell = (grid[1] - grid[0]) ** 2
    total = float(jnp.sum(jnp.exp(log_p)) * cell)
    assert abs(total - 1.0) < 0.01, total
    # Not trivially the base density: the perturbed layers change it.
    base = jax.vmap(flow.base.log_prob, in_axes=(None, 0))((), xs)
    assert float(jnp.max(jnp.abs(log_p - base)[: n * n // 2])) > 0.1


@pytest.mark.parametrize("conditional", [False, True])
def test_sample_and_log_prob_consistent(conditional):
    flow, params = _realnvp_2d(context_dim=3 if conditional else None)
    ctx = jax.random.normal(jax.random.key(7), (64, 3)) if conditional else None
    axes = (None, 0, 0 if conditional else None)

    @jax.jit
    def run(params, ks, ctx):
        xs, lp = jax.vmap(flow.sample_and_log_prob, in_axes=axes)(params, ks, ctx)
        samples = jax.vmap(flow.sample, in_axes=axes)(params, ks, ctx)
        return xs, lp, samples, jax.vmap(flow.log_prob, in_axes=axes)(params, xs, ctx)

    xs, lp, samples, lp_again = run(params, keys(64), ctx)
    assert xs.shape == (64, 2) and np.all(np.isfinite(xs)) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(samples, xs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lp, lp_again, rtol=1e-4, atol=1e-4)
    if conditional:  # the context changes the density
        lp_other = jax.vmap(flow.log_prob, in_axes=axes)(params, xs, ctx + 1.0)
        assert not np.allclose(lp, lp_other, atol=1e-3)
        with pytest.raises(ValueError, match="without context"):
            flow.log_prob(params, xs[0])


def test_class_conditional_flow():
    inner = flows.realnvp(2, 2, hidden=(8,), context_dim=3)
    flow = flows.class_conditional(inner, num_classes=3)
    params = registry.perturb(flow.init(jax.random.key(0), jnp.zeros(2), 0), seed=6)
    labels = jnp.array([0, 1, 2])
    x = jnp.array([0.3, -0.7])
    lps = jax.vmap(flow.log_prob, in_axes=(None, None, 0))(params, x, labels)
    assert len(set(np.round(np.asarray(lps), 5))) == 3
    want = inner.log_prob(params, x, flows.one_hot_context(1, 3))
    np.testing.assert_allclose(lps[1], want, rtol=1e-6)
    xs = jax.vmap(flow.sample, in_axes=(None, 0, 0))(params, keys(3), labels)
    assert xs.shape == (3, 2)
    with pytest.raises(ValueError, match="class label"):
        flow.log_prob(params, x)
    with pytest.raises(ValueError, match=r"shape \(\)"):
        flow.log_prob(params, x, labels)


def test_flow_shape_errors():
    flow = flows.make_flow(flows.standard_normal(3), flows.affine())
    with pytest.raises(ValueError, match=r"latent of shape \(4,\).*event shape \(3,\)"):
        flow.init(jax.random.key(0), jnp.zeros(4))
    flow = flows.realnvp(3, num_layers=2, hidden=(4,))
    params = flow.init(jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"expected one event of shape \(3,\), got shape \(5, 3\)"):
        flow.log_prob(params, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="dim must be >= 2"):
        flows.realnvp(1)


def test_realnvp_structure_scans_over_pairs():
    flow = flows.realnvp(4, num_layers=7, hidden=(8,))
    x = registry.signed(0, (4,))
    params = jax.eval_shape(flow.init, jax.random.key(0), x)
    stacked, last = params["bijector"]
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(stacked))  # 3 pairs under scan
    assert all(leaf.shape[0] != 3 for leaf in jax.tree.leaves(last))  # plus one odd layer
    # The traced program holds one copy of the pair whatever the depth.
    sizes = []
    for f in (flows.realnvp(4, 4, hidden=(8,)), flows.realnvp(4, 16, hidden=(8,))):
        abstract = jax.eval_shape(f.init, jax.random.key(0), x)
        sizes.append(len(jax.make_jaxpr(f.log_prob)(abstract, x).eqns))
    assert sizes[0] == sizes[1]


def test_realnvp_starts_at_identity():
    flow = flows.realnvp(4, num_layers=3, hidden=(8,))
    x = registry.signed(0, (4,))
    lp = jax.jit(lambda x: flow.log_prob(flow.init(jax.random.key(0), x), x))(x)
    np.testing.assert_allclose(lp, flow.base.log_prob((), x), rtol=1e-6)
