"""Tests for ``gen.diffusion.schedules._conversions``: log-SNR to alpha, sigma, alpha_bar, the SNR
and the EDM sigma and back, the derivatives by ``jax.jvp`` (logsnr_and_derivative, dlogsnr_dt,
alpha_sigma_and_derivatives), and the integer-timestep convention (timestep_to_t,
t_to_timestep). References: the closed-form relations in numpy; float64 central finite
differences and ``jax.grad`` on every schedule of ``schedule_references.SCHEDULES``; the EDM
schedule's derivative in closed form, exact (one-sided) at the ends; and t_i = (i + 1) / T."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from schedule_references import (
    SCHEDULES,
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
# Derived quantities and their derivatives
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddpm_linear", "cosine", "edm", "zero_snr_continuous"])
def test_derived_quantities(built, name):
    schedule = built[name]
    t = jnp.linspace(0.0, 1.0, 9)
    lam, abar, snr, edm_sigma = (
        np.asarray(x, np.float64)
        for x in jax.jit(
            lambda x: (
                schedule(x),
                S.alpha_bar(schedule, x),
                S.snr(schedule, x),
                S.edm_sigma(schedule, x),
            )
        )(t)
    )
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(abar, 1 / (1 + np.exp(-lam)), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(snr, np.exp(lam), rtol=2e-5)
        np.testing.assert_allclose(edm_sigma, np.exp(-lam / 2), rtol=2e-5)


def test_logsnr_conversions():
    lam = jnp.linspace(-15.0, 8.0, 47)
    alpha, sigma = S.alpha_sigma_from_logsnr(lam)
    np.testing.assert_allclose(np.asarray(S.logsnr_from_edm_sigma(sigma / alpha)), lam, atol=1e-4)
    np.testing.assert_allclose(np.asarray(S.logsnr_from_alpha_bar(alpha**2)), lam, atol=2e-3)
    np.testing.assert_allclose(
        np.asarray(S.edm_sigma_from_logsnr(lam)), np.exp(-np.asarray(lam) / 2), rtol=1e-6
    )


# Away from the grid points of the discrete schedules (T = 1000, 50, 10, 3).
T_INTERIOR = np.array([0.0123, 0.2871, 0.5037, 0.7719, 0.9634])


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_jvp_matches_finite_differences_float64(built, name):
    schedule = built[name]
    h = 1e-7

    @jax.jit
    def run(t):
        lam, dlam = S.logsnr_and_derivative(schedule, t)
        fd = (schedule(t + h) - schedule(t - h)) / (2 * h)
        return lam, dlam, S.dlogsnr_dt(schedule, t), fd, jax.vmap(jax.grad(schedule))(t)

    with jax.enable_x64(True):
        lam, dlam, dlam2, fd, grad = run(jnp.asarray(T_INTERIOR))
        assert lam.dtype == jnp.float64 and dlam.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(dlam), np.asarray(fd), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dlam2), np.asarray(dlam), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(dlam), rtol=1e-10)


def test_edm_derivative_is_exact_at_the_ends():
    sigma_min, sigma_max, rho = 0.002, 80.0, 7.0
    lo, span = sigma_min ** (1 / rho), sigma_max ** (1 / rho) - sigma_min ** (1 / rho)
    t = np.array([0.0, 0.5, 1.0])
    expected = -2 * rho * span / (lo + t * span)  # one-sided at 0 and 1, not halved by clipping
    ours = S.dlogsnr_dt(S.edm(sigma_min, sigma_max, rho), jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5)


def test_alpha_sigma_derivatives():
    schedule = S.cosine()
    t = jnp.asarray(T_INTERIOR, jnp.float32)
    alpha, sigma, dalpha, dsigma = S.alpha_sigma_and_derivatives(schedule, t)
    dlam = S.dlogsnr_dt(schedule, t)
    expected_dalpha = np.asarray(alpha * sigma**2 * dlam / 2)
    expected_dsigma = np.asarray(-sigma * alpha**2 * dlam / 2)
    np.testing.assert_allclose(np.asarray(dalpha), expected_dalpha, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dsigma), expected_dsigma, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Timestep convention
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num", [1000, 7, 1])
def test_timestep_convention(num):
    i = np.arange(num)
    t = S.timestep_to_t(i, num)
    np.testing.assert_allclose(np.asarray(t), (i + 1) / num, rtol=2e-7)
    np.testing.assert_array_equal(np.asarray(S.t_to_timestep(t, num)), i)
    assert int(S.t_to_timestep(0.0, num)) == 0 and int(S.t_to_timestep(1.0, num)) == num - 1
