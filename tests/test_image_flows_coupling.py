"""Tests for ``gen.flows.image._coupling``: the checkerboard and channel couplings, against
independent references: Glow's affine formula (the ``"glow"`` transformer, scale sigmoid(raw +
2)) in float64 numpy, the conditioning half that each mask must leave unchanged, written out as
boolean arrays, and the errors for context maps and shapes. Registry cases
(tests/test_bijectors.py) cover round trips, log-dets against slogdet(jacfwd) in float64,
gradients and jit/vmap for every image bijector."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry

TINY = dict(hidden_channels=8, num_blocks=1, num_groups=2)


def test_glow_transformer_is_glows_formula():
    raw = registry.signed(3, (5, 2), scale=2.0)
    y = registry.signed(4, (5,))
    t = flows.glow_affine_transformer()
    raw64, y64 = np.asarray(raw, np.float64), np.asarray(y, np.float64)
    s = 1.0 / (1.0 + np.exp(-(raw64[:, 1] + 2.0)))
    x, ldj = t.inverse(raw, y)  # data -> latent: (y + shift) * sigmoid(raw + 2)
    np.testing.assert_allclose(x, (y64 + raw64[:, 0]) * s, rtol=1e-5)
    np.testing.assert_allclose(ldj, np.log(s), rtol=1e-5)
    y_back, ldj_f = t.forward(raw, x)
    np.testing.assert_allclose(y_back, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ldj_f, -np.log(s), rtol=1e-5)


def test_coupling_masks_leave_the_conditioning_half_unchanged():
    x = registry.signed(5, (4, 4, 4))
    ctx_map = registry.signed(6, (4, 4, 3))
    board = (np.add.outer(np.arange(4), np.arange(4)) % 2 == 0)[..., None]
    cases = [
        (flows.checkerboard_coupling(0, "glow", **TINY), None, np.broadcast_to(board, x.shape)),
        (flows.checkerboard_coupling(1, "affine", **TINY), ctx_map,
         np.broadcast_to(~board, x.shape)),
        (flows.channel_coupling(0, "additive", **TINY), None,
         np.broadcast_to(np.arange(4) < 2, x.shape)),
        (flows.channel_coupling(1, "affine", context_dim=3, **TINY), ctx_map,
         np.broadcast_to(np.arange(4) >= 2, x.shape)),
    ]
    for bij, ctx, fixed in cases:
        params = registry.perturb(bij.init(jax.random.key(0), x, ctx), seed=1)
        y, _ = jax.jit(bij.forward)(params, x, ctx)
        np.testing.assert_array_equal(np.asarray(y)[fixed], np.asarray(x)[fixed])
        assert np.all(np.asarray(y)[~fixed] != np.asarray(x)[~fixed])
        if ctx is not None:  # a context map conditions the layer
            assert not np.allclose(bij.forward(params, x, ctx + 1.0)[0], y)
            with pytest.raises(ValueError, match="context of size 3"):
                bij.forward(params, x, ctx[..., :2])
            with pytest.raises(ValueError, match="context map"):
                bij.forward(params, x, ctx[:2])
            with pytest.raises(ValueError, match="without context"):
                bij.inverse(params, y)


def test_coupling_errors():
    with pytest.raises(ValueError, match="even channel count"):
        flows.channel_coupling(**TINY).init(jax.random.key(0), jnp.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="parity"):
        flows.checkerboard_coupling(2)
    bij = flows.checkerboard_coupling(**TINY)
    params = bij.init(jax.random.key(0), jnp.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, 2\).*\(4, 4, 3\)"):
        bij.forward(params, jnp.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="built without context"):
        bij.forward(params, jnp.zeros((4, 4, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="without context"):
        flows.checkerboard_coupling(context_dim=2, **TINY).init(
            jax.random.key(0), jnp.zeros((4, 4, 2))
        )
