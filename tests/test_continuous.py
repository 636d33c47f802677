"""FFJORD: CNF log-dets against the closed form of a linear field, Hutchinson's trace against the
exact one, round trips through the solver, gradients.

For ``dz/dt = A z`` on ``[0, T]``: ``z_T = expm(T A) x`` and ``log|det dz_T/dx| = T tr(A)``
(Liouville), written here from the definitions with scipy, not from the module.
"""

import math
from pathlib import Path

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
def test_gradients_through_the_adaptive_solve_agree_across_adjoints():
    """Reverse mode through dopri5, the learned time included: backpropagation through the
    solver and the continuous adjoint give the same gradients, to the solver's tolerance."""
    x = jax.random.normal(jax.random.key(9), (4, 2))
    keys = jax.random.split(jax.random.key(10), 4)
    grads = {}
    for adjoint in ("recursive", "backsolve"):
        model = ffjord.ffjord((2,), hidden=(8, 8), solver="dopri5", rtol=1e-6, atol=1e-6,
                              adjoint=adjoint, learn_time=True, time=0.5)
        params = model.init(jax.random.key(8), jnp.zeros(2))
        loss = lambda p, m=model: -jnp.mean(
            jax.vmap(m.log_prob, in_axes=(None, 0, 0))(p, x, keys))
        grads[adjoint] = jax.jit(jax.grad(loss))(params)
    for a, b in zip(jax.tree.leaves(grads["recursive"]), jax.tree.leaves(grads["backsolve"]),
                    strict=True):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert abs(float(grads["recursive"][0]["sqrt_time"])) > 1e-3


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


def test_learned_time_is_the_closed_form_with_its_gradient():
    """``learn_time``: T = sqrt_time^2 is a parameter. For ``dz/dt = A z`` the block gives
    ``z = expm(T A) x`` and ``T tr(A)``; the gradient of ``log N(z) + T tr(A)`` in sqrt_time
    is checked against autodiff of that closed form (scipy's expm, differentiated by JAX)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(14)
        a = rng.normal(size=(3, 3)) * 0.5
        x = jnp.asarray(rng.normal(size=3))
        # Heun (a scan: quick to compile in reverse mode; the slow run has dopri5), 512 steps:
        # its O(h^2) error is about 1e-6 here. The trace of A z is constant: its integral is exact.
        block = ffjord.cnf(Linear(a), time=0.7, learn_time=True, solver="heun", num_steps=512)
        params = block.init(jax.random.key(0), x)
        np.testing.assert_allclose(params["sqrt_time"], math.sqrt(0.7), rtol=1e-12)
        params["sqrt_time"] = jnp.asarray(0.9)  # T = 0.81, away from the initial value

        def loss(p):
            z, ldj = block.inverse(p, x)
            return -0.5 * jnp.sum(z**2) + ldj

        def closed_form(s):
            z = jax.scipy.linalg.expm(s**2 * jnp.asarray(a)) @ x
            return -0.5 * jnp.sum(z**2) + s**2 * np.trace(a)

        z, ldj = jax.jit(block.inverse)(params, x)
        np.testing.assert_allclose(z, scipy.linalg.expm(0.81 * a) @ np.asarray(x), rtol=1e-5)
        np.testing.assert_allclose(ldj, 0.81 * np.trace(a), rtol=1e-12)
        value, grads = jax.jit(jax.value_and_grad(loss))(params)
        ref_value, ref_grad = jax.value_and_grad(closed_form)(jnp.asarray(0.9))
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        np.testing.assert_allclose(grads["sqrt_time"], ref_grad, rtol=1e-5)
        assert abs(float(ref_grad)) > 1e-2  # a gradient that T really has


def _multiscale_reference(block, params, x, alpha):
    """FFJORD's ODENVP._logdensity for two scales and two blocks per stack, written out:
    logit; stack; squeeze; stack; factor out the last half of the channels; stack on the first
    half. ``params`` follow :func:`gen.flows.image.multi_scale`'s documented layout, per scale
    ``((), next scale, step, (), pre_squeeze)``, and a stack applies its last block first when
    going from data to latent (as ``chain`` does)."""
    from gen.flows.image import squeeze

    y = jnp.log(alpha + (1 - 2 * alpha) * x) - jnp.log1p(-(alpha + (1 - 2 * alpha) * x))
    ldj = jnp.sum(jnp.log(1 - 2 * alpha) - jnp.log(alpha + (1 - 2 * alpha) * x)
                  - jnp.log1p(-(alpha + (1 - 2 * alpha) * x)))

    def stack(stack_params, y, ldj):
        for p in reversed(stack_params):
            y, d = block.inverse(p, y)
            ldj = ldj + d
        return y, ldj

    _, final, step, _, pre = params
    y, ldj = stack(pre, y, ldj)
    y, _ = squeeze().forward((), y)
    y, ldj = stack(step, y, ldj)
    keep, out = y[..., : y.shape[-1] // 2], y[..., y.shape[-1] // 2:]
    keep, ldj = stack(final, keep, ldj)
    z = jnp.concatenate([keep.ravel(), out.ravel()])  # log N(0, I) ignores the order
    return jax.scipy.stats.norm.logpdf(z).sum() + ldj


def test_multiscale_log_prob_is_ffjords_odenvp_written_out():
    kw = dict(solver="euler", num_steps=2, time=0.8)
    model = ffjord.ffjord((4, 4, 1), num_blocks=2, num_scales=2, hidden=(4,), logit=1e-2, **kw)
    params = model.init(jax.random.key(15), jnp.full((4, 4, 1), 0.5))
    params = jax.tree.map(lambda p: p * 3.0, params)  # fields far from zero
    block = ffjord.cnf(ffjord.ConcatConvNet((4,), "softplus"), **kw)
    x = jax.random.uniform(jax.random.key(16), (4, 4, 1), minval=0.01, maxval=0.99)
    ours = jax.jit(model.log_prob)(params, x)
    ref = jax.jit(lambda p, x: _multiscale_reference(block, p, x, 1e-2))(params, x)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    # 6 blocks, 2 on each of the shapes (4,4,1), (2,2,4) and (2,2,2): each has its own net.
    kernels = [p["net"]["params"]["Conv_1"]["kernel"].shape[-1]
               for p in jax.tree.leaves(params, is_leaf=lambda p: isinstance(p, dict))]
    assert sorted(kernels) == [1, 1, 2, 2, 4, 4]
    # The same model as a Flow (its own params layout) gives the same density.
    flow_params = {"base": (), "bijector": (params, ())}
    np.testing.assert_allclose(jax.jit(model.flow.log_prob)(flow_params, x), ours, rtol=1e-5)


def test_multiscale_hutchinson_is_unbiased_and_samples_skip_the_trace():
    model = ffjord.ffjord((4, 4, 1), num_blocks=1, num_scales=2, hidden=(4,), solver="heun",
                          num_steps=2, logit=1e-2)
    params = model.init(jax.random.key(17), jnp.full((4, 4, 1), 0.5))
    params = jax.tree.map(lambda p: p * 3.0, params)
    x = jax.random.uniform(jax.random.key(18), (4, 4, 1), minval=0.01, maxval=0.99)
    exact = float(jax.jit(model.log_prob)(params, x))
    n = 1000
    keys = jax.random.split(jax.random.key(19), n)
    estimates = jax.jit(jax.vmap(model.log_prob, in_axes=(None, None, 0)))(params, x, keys)
    std = float(jnp.std(estimates))
    assert std > 1e-3 and abs(float(jnp.mean(estimates)) - exact) < 4 * std / math.sqrt(n)
    # Sampling solves the field alone; the Flow's sample solves it beside the exact trace.
    key = jax.random.key(20)
    ours = jax.jit(model.sample)(params, key)
    via_flow = jax.jit(model.flow.sample)({"base": (), "bijector": (params, ())}, key)
    np.testing.assert_allclose(ours, via_flow, rtol=1e-5, atol=1e-6)
    # The logit transform's range with alpha = 1e-2: (-alpha, 1 + alpha) / (1 - 2 alpha).
    assert ours.shape == (4, 4, 1) and bool(jnp.all(jnp.abs(ours - 0.5) < 0.5 + 0.0103))


def test_multiscale_bad_input():
    with pytest.raises(ValueError, match="num_scales must be 1 for vectors"):
        ffjord.ffjord((2,), num_scales=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        ffjord.ffjord((6, 6, 1), num_scales=3)


def test_the_task_refuses_scales_its_data_cannot_have():
    from gen.config import load_config_file
    from gen.data.source import DataSpec
    from gen.errors import ConfigError
    from gen.models import build_task

    root = Path(__file__).parents[1] / "experiments" / "configs"
    config = load_config_file(root / "ffjord_mnist.py")
    config.model.num_scales = 4  # 3 squeezes: 28 is not divisible by 8
    with pytest.raises(ConfigError, match="divisible by 8"):
        build_task(config, DataSpec((28, 28, 1), "image"))
    config = load_config_file(root / "ffjord_toy2d.py")
    with config.model.unlocked():
        config.model.num_scales = 2
    with pytest.raises(ConfigError, match="need image data"):
        build_task(config, DataSpec((2,), "vector"))
