"""FFJORD: CNF log-dets against the closed form of a linear field, Hutchinson's trace against the
exact one, round trips through the solver, gradients.

For ``dz/dt = A z`` on ``[0, T]``: ``z_T = expm(T A) x`` and ``log|det dz_T/dx| = T tr(A)``
(Liouville), written here from the definitions with scipy, not from the module.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gen.flows import continuous as ffjord

SMALL = dict(hidden=(8, 8), solver="heun", num_steps=4)


class Linear(nn.Module):
    """``f(t, z) = A z`` with A initialized to ``matrix``."""

    matrix: np.ndarray

    @nn.compact
    def __call__(self, t, z):
        a = self.param("a", lambda key: jnp.asarray(self.matrix, z.dtype))
        return a @ z


def test_linear_cnf_log_det_and_inverse_are_the_closed_form():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        a = rng.normal(size=(3, 3)) * 0.5
        x = rng.normal(size=3)
        block = ffjord.cnf(Linear(a), time=0.7, solver="dopri5", rtol=1e-9, atol=1e-9)
        params = block.init(jax.random.key(0), jnp.asarray(x))
        z, ldj = jax.jit(block.inverse)(params, jnp.asarray(x))
        np.testing.assert_allclose(z, scipy.linalg.expm(0.7 * a) @ x, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(ldj, 0.7 * np.trace(a), rtol=1e-8)
        back, ldj_back = jax.jit(block.forward)(params, z)
        np.testing.assert_allclose(back, x, atol=1e-7)
        np.testing.assert_allclose(ldj_back, -ldj, rtol=1e-8)


def test_hutchinson_log_prob_is_unbiased_for_the_exact_one():
    model = ffjord.ffjord((3,), **SMALL)
    params = model.init(jax.random.key(0), jnp.zeros(3))
    params = jax.tree.map(lambda p: p * 3.0, params)  # a Jacobian far from the identity
    x = jnp.asarray([0.5, -1.0, 0.3])
    exact = float(jax.jit(model.log_prob)(params, x))
    n = 2000
    keys = jax.random.split(jax.random.key(1), n)
    estimates = jax.jit(jax.vmap(model.log_prob, in_axes=(None, None, 0)))(params, x, keys)
    std = float(jnp.std(estimates))
    assert std > 1e-3  # random, and unbiased:
    assert abs(float(jnp.mean(estimates)) - exact) < 4 * std / math.sqrt(n)


def test_samples_invert_to_their_latents():
    # Heun with 64 steps each way (a scan: cheap to compile); its global error is O(h^2).
    model = ffjord.ffjord((2,), hidden=(8, 8))
    params = model.init(jax.random.key(2), jnp.zeros(2))
    params = jax.tree.map(lambda p: p * 2.0, params)
    (block,) = params
    cnf = ffjord.cnf(ffjord.ConcatSquashMLP((8, 8)), solver="heun", num_steps=64)

    @jax.jit
    def round_trip(z):
        x, ldj_fwd = cnf.forward(block, z)
        z_back, ldj_inv = cnf.inverse(block, x)
        return x, z_back, ldj_fwd, ldj_inv

    z = jax.random.normal(jax.random.key(3), (4, 2))
    x, z_back, ldj_fwd, ldj_inv = jax.vmap(round_trip)(z)
    assert float(jnp.max(jnp.abs(x - z))) > 0.1  # the flow moves points
    np.testing.assert_allclose(z_back, z, atol=1e-4)
    np.testing.assert_allclose(ldj_inv, -ldj_fwd, atol=1e-4)


def test_gradients_are_finite_and_match_finite_differences():
    model = ffjord.ffjord((2,), **SMALL)
    params = model.init(jax.random.key(4), jnp.zeros(2))
    x = jax.random.normal(jax.random.key(5), (8, 2))
    keys = jax.random.split(jax.random.key(6), 8)
    loss = lambda p: -jnp.mean(jax.vmap(model.log_prob, in_axes=(None, 0, 0))(p, x, keys))
    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    leaves = jax.tree.leaves(grads)
    assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0
    # Directional derivative along a random direction, against central differences.
    direction = jax.tree.map(lambda p: jnp.asarray(
        np.random.default_rng(7).normal(size=p.shape), p.dtype), params)
    along = sum(float(jnp.vdot(g, d)) for g, d in zip(leaves, jax.tree.leaves(direction),
                                                      strict=True))
    h = 1e-2
    shifted = jax.jit(lambda s: loss(jax.tree.map(lambda p, d: p + s * d, params, direction)))
    fd = (float(shifted(h)) - float(shifted(-h))) / (2 * h)
    np.testing.assert_allclose(along, fd, rtol=2e-2, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", ["recursive", "backsolve"])
def test_gradients_through_the_adaptive_solve_are_finite(adjoint):
    model = ffjord.ffjord((2,), hidden=(8, 8), solver="dopri5", rtol=1e-4, atol=1e-4,
                          adjoint=adjoint)
    params = model.init(jax.random.key(8), jnp.zeros(2))
    x = jax.random.normal(jax.random.key(9), (4, 2))
    keys = jax.random.split(jax.random.key(10), 4)
    loss = lambda p: -jnp.mean(jax.vmap(model.log_prob, in_axes=(None, 0, 0))(p, x, keys))
    grads = jax.jit(jax.grad(loss))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_image_events_and_bad_input():
    model = ffjord.ffjord((4, 4, 1), hidden=(4,), logit=1e-6, solver="euler", num_steps=2)
    params = model.init(jax.random.key(11), jnp.full((4, 4, 1), 0.5))
    x = jax.jit(model.sample)(params, jax.random.key(12))
    assert x.shape == (4, 4, 1) and bool(jnp.all((x > 0) & (x < 1)))
    assert np.isfinite(float(jax.jit(model.log_prob)(params, x, jax.random.key(13))))
    with pytest.raises(ValueError, match="expected one event"):
        model.init(jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="events must be"):
        ffjord.ffjord((2, 2))
    with pytest.raises(ValueError, match="unknown ODE solver"):
        ffjord.ffjord((2,), solver="rk4")
    with pytest.raises(ValueError, match="unknown activation"):
        ffjord.ffjord((2,), activation="relu6").init(jax.random.key(0), jnp.zeros(2))
    with pytest.raises(ValueError, match="context"):
        ffjord.cnf(ffjord.ConcatSquashMLP((4,))).inverse(None, jnp.zeros(2), jnp.zeros(1))
