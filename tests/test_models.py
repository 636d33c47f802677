"""Flow models of gen/flows/models.py: MAF, NSF-C and NSF-AR.

Their bijectors also run through the generic checks of test_bijectors.py (registry cases
``maf_model``, ``nsf_coupling``, ``nsf_autoregressive_conditional``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import models, registry

MODELS = {
    "maf": lambda dim, layers, **kw: models.maf(dim, layers, hidden=(16,), **kw),
    "maf_spline": lambda dim, layers, **kw: models.maf(
        dim, layers, hidden=(16,), transformer="spline", **kw
    ),
    "nsf_coupling": lambda dim, layers, **kw: models.nsf_coupling(
        dim, layers, num_bins=6, hidden=(16,), **kw
    ),
    "nsf_autoregressive": lambda dim, layers, **kw: models.nsf_autoregressive(
        dim, layers, num_bins=6, hidden=(16,), **kw
    ),
}
NAMES = sorted(MODELS)
# The spline MAF is NSF-AR without the LU layers: its density checks would repeat those.
DENSITY_NAMES = sorted(set(MODELS) - {"maf_spline"})


def keys(n: int) -> jax.Array:
    return jax.random.split(jax.random.key(3), n)


@functools.cache
def two_d(name: str):
    """A 2-D model with 3 layers at perturbed params, and one compiled function that returns the
    grid density, samples with their log-densities, and log_prob at those samples."""
    flow = MODELS[name](2, 3)
    params = jax.jit(flow.init)(jax.random.key(0), jnp.zeros(2))
    params = registry.perturb(params, seed=5, scale=0.1)
    lim, n = 8.0, 480
    grid = jnp.linspace(-lim, lim, n)
    xs = jnp.stack(jnp.meshgrid(grid, grid), -1).reshape(-1, 2)

    @jax.jit
    def run(params, ks):
        log_p = jax.vmap(flow.log_prob, in_axes=(None, 0))(params, xs)
        samples = jax.vmap(flow.sample, in_axes=(None, 0))(params, ks)
        sampled, lp_sampled = jax.vmap(flow.sample_and_log_prob, in_axes=(None, 0))(params, ks)
        lp_again = jax.vmap(flow.log_prob, in_axes=(None, 0))(params, sampled)
        return log_p, samples, sampled, lp_sampled, lp_again

    out = jax.tree.map(np.asarray, run(params, keys(256)))
    return flow, params, xs, (grid[1] - grid[0]) ** 2, out


@pytest.mark.parametrize("name", DENSITY_NAMES)
def test_density_integrates_to_one(name):
    flow, _, xs, cell, (log_p, *_) = two_d(name)
    assert np.all(np.isfinite(log_p))
    total = float(np.sum(np.exp(log_p)) * cell)
    assert abs(total - 1.0) < 0.01, total
    # Not the base density: the perturbed layers change it.
    base = np.asarray(jax.vmap(flow.base.log_prob, in_axes=(None, 0))((), xs))
    inner = np.all(np.abs(np.asarray(xs)) < 3, axis=1)
    assert np.max(np.abs(log_p - base)[inner]) > 0.1


@pytest.mark.parametrize("name", DENSITY_NAMES)
def test_samples_and_log_prob_finite_and_consistent(name):
    *_, (_, samples, sampled, lp_sampled, lp_again) = two_d(name)
    for a in (samples, sampled, lp_sampled, lp_again):
        assert np.all(np.isfinite(a))
    np.testing.assert_allclose(samples, sampled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lp_sampled, lp_again, rtol=1e-4, atol=1e-4)
    assert np.std(samples, axis=0).min() > 0.1


@pytest.mark.parametrize("name", NAMES)
def test_traced_program_size_independent_of_depth(name):
    x = registry.signed(0, (3,))
    sizes = []
    for layers in (2, 6):
        flow = MODELS[name](3, layers)
        params = jax.eval_shape(flow.init, jax.random.key(0), x)
        stacked = params["bijector"][1]  # (m, scan((f, m), L)): stacked pair params
        assert all(leaf.shape[0] == layers for leaf in jax.tree.leaves(stacked))
        lp = jax.make_jaxpr(flow.log_prob)(params, x)
        sample = jax.make_jaxpr(flow.sample)(params, jax.random.key(0))
        sizes.append((len(lp.eqns), len(sample.eqns)))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("name", ["maf", "nsf_autoregressive"])
def test_starts_at_base_density(name):
    """MADE output layers start at zero, and reversals keep N(0, I): the flow is the base."""
    flow = MODELS[name](3, 2, **({"linear": "reverse"} if name != "maf" else {}))
    x = registry.signed(1, (3,)) * 2.0  # inside and beyond the spline bound
    lp = jax.jit(lambda x: flow.log_prob(flow.init(jax.random.key(0), x), x))(x)
    np.testing.assert_allclose(lp, flow.base.log_prob((), x), rtol=1e-6)


def test_conditional_models():
    ctx = jax.random.normal(jax.random.key(7), (32, 2))
    for name in ("maf",):
        flow = MODELS[name](3, 2, context_dim=2)
        params = jax.jit(flow.init)(jax.random.key(0), jnp.zeros(3), ctx[0])
        params = registry.perturb(params, seed=2)

        @jax.jit
        def run(params, ks, ctx, flow=flow):
            xs, lp = jax.vmap(flow.sample_and_log_prob, in_axes=(None, 0, 0))(params, ks, ctx)
            log_prob = jax.vmap(flow.log_prob, in_axes=(None, 0, 0))
            return xs, lp, log_prob(params, xs, ctx), log_prob(params, xs, ctx + 1.0)

        xs, lp, lp_again, lp_other = run(params, keys(32), ctx)
        assert np.all(np.isfinite(xs)) and np.all(np.isfinite(lp))
        np.testing.assert_allclose(lp, lp_again, rtol=1e-4, atol=1e-4)
        assert not np.allclose(lp, lp_other, atol=1e-3)  # the context changes the density
        with pytest.raises(ValueError, match="without context"):
            flow.log_prob(params, xs[0])
        with pytest.raises(ValueError, match="without context"):
            flow.sample(params, jax.random.key(0))


def test_model_validation_and_exports():
    with pytest.raises(ValueError, match="dim must be >= 2"):
        models.nsf_coupling(1)
    for make in (models.maf, models.nsf_coupling, models.nsf_autoregressive):
        with pytest.raises(ValueError, match="num_layers must be >= 1"):
            make(3, num_layers=0)
    with pytest.raises(ValueError, match="linear must be one of"):
        models.nsf_autoregressive(3, linear="permute?")
    flow = models.maf(3, 2, hidden=(4,))
    params = flow.init(jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"expected one event of shape \(3,\), got shape \(4,\)"):
        flow.log_prob(params, jnp.zeros(4))
    assert flows.maf is models.maf and flows.nsf_coupling is models.nsf_coupling
    assert flows.nsf_autoregressive is models.nsf_autoregressive
