"""Tests for ``gen.flows.image._actnorm``: ActNorm's data-dependent init (actnorm_data_init),
against an independent reference: the per-channel mean and std of each ActNorm's output in the
data -> latent pass, recomputed layer by layer through a scan of (coupling, 1x1 conv, ActNorm)
steps and an inverted ActNorm, with every other param untouched; and a clear error for data-init
params used outside the helper. Registry cases (tests/test_bijectors.py) cover round trips,
log-dets against slogdet(jacfwd) in float64, gradients and jit/vmap for every image bijector."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry
from gen.flows.image import ActNormParams
from gen.flows.image._actnorm import _DataInitParams

TINY = dict(hidden_channels=8, num_blocks=1, num_groups=2)


def _moments(h):
    return np.asarray(h).mean(axis=(0, 1, 2)), np.asarray(h).std(axis=(0, 1, 2))


def test_actnorm_data_init_normalizes_every_layer_in_order():
    """scan of 3 (coupling, 1x1 conv, ActNorm) steps plus an inverted ActNorm: after the data
    init, each ActNorm's output in the data -> latent pass is standardized per channel, given the
    layers before it; other params are untouched."""
    step = flows.chain(flows.channel_coupling(0, "glow", **TINY), flows.conv1x1(), flows.actnorm())
    bij = flows.chain(flows.scan(step, 3), flows.invert(flows.actnorm()))
    x = 3.0 + jnp.array([2.0, 0.5, 1.0, 4.0]) * jax.random.normal(jax.random.key(0), (64, 4, 4, 4))
    params = registry.perturb(jax.jit(bij.init)(jax.random.key(1), x[0]), seed=3)
    new = flows.actnorm_data_init(params, bij, x)

    is_an = lambda p: isinstance(p, ActNormParams)
    old_leaves = jax.tree.leaves(params, is_leaf=is_an)
    new_leaves = jax.tree.leaves(new, is_leaf=is_an)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    assert sum(map(is_an, new_leaves)) == 2
    for old, n in zip(old_leaves, new_leaves, strict=True):
        if is_an(n):
            assert not np.allclose(n.loc, old.loc)
        else:
            np.testing.assert_array_equal(n, old)

    stacked, last = new
    coupling, conv, an = flows.channel_coupling(0, "glow", **TINY), flows.conv1x1(), flows.actnorm()
    h = x
    # invert(actnorm) is the data-side layer: its inverse is actnorm's forward.
    h = jax.vmap(an.forward, (None, 0))(last, h)[0]
    mean, std = _moments(h)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(std, 1.0, atol=1e-3)
    for i in (2, 1, 0):  # scan's inverse runs the copies last to first
        p = jax.tree.map(lambda a, i=i: a[i], stacked)
        h = jax.vmap(an.inverse, (None, 0))(p[2], h)[0]
        mean, std = _moments(h)
        np.testing.assert_allclose(mean, 0.0, atol=1e-4)
        np.testing.assert_allclose(std, 1.0, atol=1e-3)
        h = jax.vmap(conv.inverse, (None, 0))(p[1], h)[0]
        h = jax.vmap(coupling.inverse, (None, 0))(p[0], h)[0]
    # No ActNorm: params come back as they are.
    plain = flows.conv1x1()
    p = plain.init(jax.random.key(0), x[0])
    assert flows.actnorm_data_init(p, plain, x) is p
    # Data-init params outside the helper: a clear error, not a silent result.
    with pytest.raises(ValueError, match="only valid inside actnorm_data_init"):
        flows.actnorm().inverse(_DataInitParams(*last), x[0])
