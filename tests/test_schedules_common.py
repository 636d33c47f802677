"""Tests for ``gen.diffusion.schedules._common``: the contract that every schedule keeps through the
helpers it shares (time clipping, dtypes, safe logs, argument checks), on every schedule of
``schedule_references.SCHEDULES``. References: the VP identities alpha^2 + sigma^2 = 1 and
alpha^2 = sigmoid(lambda) on a fine grid, strict monotonicity, the documented clipping of t into
[0, 1] with zero gradient outside, finite values and gradients at the ends (-inf only at t = 1
under zero terminal SNR), eager results against jit and vmap, the output dtypes, and a
ValueError for every bad constructor argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from schedule_references import (
    SCHEDULES,
    ZERO_TERMINAL,
    built_schedules,
)

from gen.diffusion import schedules as S

# All the schedule test files run on one worker (one xdist_group, as when they were one module),
# so the schedules that several of them share (schedule_references.built_schedules) are built
# once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")


@pytest.fixture(scope="module")
def built():
    return built_schedules()


# ----------------------------------------------------------------------------------------------
# Properties of every schedule
# ----------------------------------------------------------------------------------------------


T_GRID = np.linspace(0.0, 1.0, 4001)
T_ENDS = np.array([0.0, 1.0, -0.5, 1.5, -3.0, 7.0])


def _properties(schedule):
    """Everything the property test needs, in one jitted call per schedule."""

    @jax.jit
    def run(t):
        alpha, sigma, dalpha, dsigma = S.alpha_sigma_and_derivatives(schedule, t)
        return schedule(t), alpha, sigma, dalpha, dsigma, jax.vmap(jax.grad(schedule))(t)

    out = run(jnp.asarray(np.concatenate([T_GRID, T_ENDS]), jnp.float32))
    out = [np.asarray(x, np.float64) for x in out]
    n = len(T_GRID)
    return [x[:n] for x in out], [x[n:] for x in out]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_properties(built, name):
    (lam, alpha, sigma, dalpha, dsigma, _), ends = _properties(built[name])
    lam_ends, grads = ends[0], ends[-1]
    # Strictly decreasing, no NaN.
    assert not np.any(np.isnan(lam))
    assert np.all(np.diff(lam) < 0)
    # VP: alpha^2 + sigma^2 = 1, alpha^2 = sigmoid(lambda).
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=0, atol=2e-6)
    np.testing.assert_allclose(alpha**2, 1 / (1 + np.exp(-lam)), rtol=1e-5, atol=1e-7)
    # Finite values and gradients at the ends and outside [0, 1]; no NaN anywhere.
    assert not np.any(np.isnan(lam_ends)) and np.all(np.isfinite(grads)), (lam_ends, grads)
    assert all(np.all(np.isfinite(x)) for x in ends[1:])
    assert np.all(np.isfinite(dalpha)) and np.all(np.isfinite(dsigma))
    if name in ZERO_TERMINAL:
        assert np.all(np.isneginf(lam_ends[[1, 3, 5]])) and np.all(np.isfinite(lam_ends[[0, 2, 4]]))
        assert alpha[-1] == 0.0 and sigma[-1] == 1.0
    else:
        assert np.all(np.isfinite(lam_ends))
    # Documented: t is clipped into [0, 1], so lambda is constant outside, with zero gradient.
    assert lam_ends[2] == lam_ends[0] and lam_ends[4] == lam_ends[0]
    assert lam_ends[3] == lam_ends[1] and lam_ends[5] == lam_ends[1]
    np.testing.assert_array_equal(grads[2:], 0.0)


@pytest.mark.parametrize("name", ["ddpm_linear", "sigmoid", "learned_random", "zero_snr_T1000"])
def test_jit_vmap_and_shapes(built, name):
    schedule = built[name]
    t = jnp.linspace(0.0, 1.0, 24, dtype=jnp.float32).reshape(4, 6)
    eager = np.asarray(schedule(t))
    assert eager.shape == (4, 6) and eager.dtype == np.float32
    np.testing.assert_allclose(np.asarray(jax.jit(schedule)(t)), eager, rtol=1e-5, atol=1e-5)
    vmapped = jax.jit(jax.vmap(schedule))(t)
    np.testing.assert_allclose(np.asarray(vmapped), eager, rtol=1e-5, atol=1e-5)
    vmapped2 = jax.jit(jax.vmap(jax.vmap(schedule)))(t)
    np.testing.assert_allclose(np.asarray(vmapped2), eager, rtol=1e-5, atol=1e-5)
    # Shapes and dtypes, by tracing only.
    shape_of = lambda shape, dtype: jax.eval_shape(schedule, jax.ShapeDtypeStruct(shape, dtype))
    assert shape_of((), jnp.float32).shape == ()
    assert shape_of((3,), jnp.int32).dtype == jnp.float32
    assert shape_of((3,), jnp.bfloat16).dtype == jnp.float32
    with jax.enable_x64(True):
        assert shape_of((3,), jnp.float64).dtype == jnp.float64


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: S.ddpm_linear(beta_start=0.02, beta_end=0.01),
        lambda: S.ddpm_linear(beta_start=0.01, beta_end=0.01),
        lambda: S.ddpm_linear(beta_start=0.0),
        lambda: S.ddpm_linear(num_steps=0),
        lambda: S.ddpm_linear(num_steps=2.5),
        lambda: S.ddpm_linear(num_steps=True),
        lambda: S.scaled_linear(num_steps=-1),
        lambda: S.scaled_linear(beta_start=0.5, beta_end=0.1),
        lambda: S.cosine(num_steps=0),
        lambda: S.cosine(s=-0.1),
        lambda: S.cosine(logsnr_min=5.0, logsnr_max=-5.0),
        lambda: S.sigmoid(start=3.0, end=-3.0),
        lambda: S.sigmoid(tau=0.0),
        lambda: S.edm(sigma_min=80.0, sigma_max=0.002),
        lambda: S.edm(sigma_min=1.0, sigma_max=1.0),
        lambda: S.edm(rho=0.0),
        lambda: S.learned(gamma_min=5.0, gamma_max=-13.3),
        lambda: S.from_betas([]),
        lambda: S.from_betas([[0.1, 0.2]]),
        lambda: S.from_betas([0.1, -0.1]),
        lambda: S.from_betas([0.1, 1.0, 0.2]),
        lambda: S.from_betas([0.1, np.nan]),
        lambda: S.from_betas([1.0]),
        lambda: S.from_betas([1e-9, 0.1]),
        lambda: S.shift(S.edm(), 0.0),
        lambda: S.shift(S.edm(), -2.0),
        lambda: S.interpolate(S.edm(), S.edm(), 1.5),
        lambda: S.discretize(S.edm(), 0),
        lambda: S.rescale_zero_terminal_snr(S.edm(), num_steps=0),
        lambda: S.discrete_alphas_cumprod(S.edm(), 0),
        lambda: S.timestep_to_t(0, 0),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()
