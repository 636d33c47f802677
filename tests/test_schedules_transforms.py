"""Tests for ``gen.diffusion.schedules._transforms``: rescale_zero_terminal_snr, shift, interpolate
and discretize. References: Lin et al. 2023, Algorithm 1, recomputed in float64 numpy
independently of the library (``schedule_references``), and diffusers'
DDPMScheduler(rescale_betas_zero_snr=True) itself (skipped without torch and diffusers); the shift
and interpolation formulas on the EDM schedule in closed form, SD3's rectified-flow timestep shift,
and VDM-style discretization (the base schedule at ceil(t T) / T)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from schedule_references import (
    ev,
    logit,
    ref_alphas_cumprod,
    ref_linear_betas,
    ref_zero_terminal_snr,
    zero_snr_betas,
)

from gen.diffusion import schedules as S

# All the schedule test files run on one worker (one xdist_group, as when they were one module),
# so the schedules that several of them share (schedule_references.built_schedules) are built
# once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")


# ----------------------------------------------------------------------------------------------
# Zero terminal SNR
# ----------------------------------------------------------------------------------------------


def test_zero_terminal_snr_matches_real_diffusers():
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(rescale_betas_zero_snr=True)
    ours = S.discrete_alphas_cumprod(
        S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000), 1000
    )
    expected = ref.alphas_cumprod.numpy()
    assert ours[-1] == 0.0 and expected[-1] == 0.0
    # diffusers runs Algorithm 1 in float32 (sqrt, shift, scale); we run it in float64.
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=0)
    # Its rescaled betas through from_betas give its alphas_cumprod exactly.
    from_betas = S.discrete_alphas_cumprod(S.from_betas(ref.betas.numpy()), 1000)
    np.testing.assert_allclose(from_betas, expected, rtol=1e-6, atol=0)


def test_zero_terminal_snr_discrete_is_algorithm_1():
    base = S.discrete_alphas_cumprod(S.ddpm_linear(), 1000)
    ours = S.discrete_alphas_cumprod(
        S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000), 1000
    )
    assert not np.any(np.isnan(ours))
    assert ours[-1] == 0.0
    assert ours[0] == base[0]  # the first step is unchanged
    np.testing.assert_allclose(ours, ref_zero_terminal_snr(base), rtol=1e-6, atol=0)
    # Against Algorithm 1 on the independently recomputed linear betas.
    independent = ref_zero_terminal_snr(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    np.testing.assert_allclose(ours, independent, rtol=1e-4, atol=0)
    # Betas that end in 1 give the same schedule.
    np.testing.assert_allclose(
        S.discrete_alphas_cumprod(S.from_betas(zero_snr_betas()), 1000), ours, rtol=1e-4, atol=0
    )


def test_zero_terminal_snr_continuous():
    base = S.cosine()
    schedule = S.rescale_zero_terminal_snr(base)
    t = np.linspace(0.0, 1.0, 11)
    lam = ev(schedule, t)
    assert lam[-1] == -np.inf and np.all(np.isfinite(lam[:-1]))
    np.testing.assert_allclose(lam[0], ev(base, 0.0), rtol=1e-6)  # anchored at t = 0
    # By hand: s = a0 (a - a1) / (a0 - a1) on sqrt(alpha_bar), in float64.
    root = np.sqrt(1 / (1 + np.exp(-ev(base, t))))
    s = root[0] * (root - root[-1]) / (root[0] - root[-1])
    np.testing.assert_allclose(lam[1:-1], logit(s[1:-1] ** 2), rtol=1e-4, atol=1e-4)
    at_one = jax.jit(
        lambda x: (
            *S.alpha_sigma(schedule, x),
            S.alpha_bar(schedule, x),
            S.edm_sigma(schedule, x),
            S.dlogsnr_dt(schedule, x),
        )
    )(jnp.float32(1.0))
    alpha, sigma, abar, edm_sigma, dlam = (float(x) for x in at_one)
    assert alpha == 0.0 and sigma == 1.0 and abar == 0.0 and edm_sigma == np.inf
    assert dlam == 0.0  # documented: reported as 0, not -inf or NaN


def test_zero_terminal_snr_keeps_the_steps_before_the_anchor():
    base = S.ddpm_linear()
    schedule = S.rescale_zero_terminal_snr(base, num_steps=1000)
    t = np.array([0.0, 0.0004, 0.001])
    np.testing.assert_allclose(ev(schedule, t), ev(base, t), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Combinators
# ----------------------------------------------------------------------------------------------


def rf_logsnr(t):
    """Rectified flow: alpha = 1 - t, sigma = t (not a VP schedule, only its log-SNR matters)."""
    return 2.0 * (jnp.log1p(-t) - jnp.log(t))


def _edm_np(t, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    t = np.asarray(t, np.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return -2 * rho * np.log(lo + t * (hi - lo))


def test_shift_formula():
    t = np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(
        ev(S.shift(S.edm(), 8.0), t), _edm_np(t) - 2 * np.log(8.0), rtol=1e-5, atol=1e-5
    )
    # SD3's timestep shift for rectified flow, t' = f t / (1 + (f - 1) t), is the same shift.
    u = np.linspace(0.02, 0.98, 25)
    f = 3.0
    np.testing.assert_allclose(
        ev(S.shift(rf_logsnr, f), u), ev(rf_logsnr, f * u / (1 + (f - 1) * u)), rtol=1e-4, atol=1e-5
    )


def test_interpolate_formula():
    line = lambda t: 5.0 - 10.0 * t
    t = np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(
        ev(S.interpolate(S.edm(), line, 0.25), t),
        0.75 * _edm_np(t) + 0.25 * (5 - 10 * t),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        ev(S.interpolate(S.edm(), line, lambda s: s), t),
        (1 - t) * _edm_np(t) + t * (5 - 10 * t),
        rtol=1e-5,
        atol=1e-5,
    )


def test_interpolate_with_minus_inf():
    zero_snr = S.rescale_zero_terminal_snr(S.edm())
    t = jnp.asarray([0.5, 1.0], jnp.float32)
    only_edm = S.interpolate(zero_snr, S.edm(), 1.0)  # 0 * (-inf) counts as 0
    np.testing.assert_allclose(ev(only_edm, t), _edm_np([0.5, 1.0]), rtol=1e-5)
    half = S.interpolate(zero_snr, S.edm(), 0.5)
    lam = ev(half, t)
    assert np.isfinite(lam[0]) and lam[1] == -np.inf
    assert np.all(np.isfinite(np.asarray(jax.jit(jax.vmap(jax.grad(half)))(t))))


def test_discretize_is_non_increasing_and_vdm_like():
    base = S.cosine()
    schedule = S.discretize(base, 10)
    t = np.linspace(0.0, 1.0, 1001)
    lam = ev(schedule, t)
    assert np.all(np.diff(lam) <= 0)
    assert len(np.unique(lam)) == 11  # t = 0 and the ten timesteps
    rng = np.random.default_rng(0)
    u = rng.uniform(0.0, 1.0, 64).astype(np.float32)
    expected = ev(base, np.ceil(u.astype(np.float64) * 10) / 10)
    np.testing.assert_allclose(ev(schedule, u), expected, rtol=1e-6)
    grid = (np.arange(10) + 1.0) / 10  # float32 0.3 * 10 rounds above 3: still timestep 3/10
    np.testing.assert_allclose(ev(schedule, grid), ev(base, grid), rtol=1e-6)
    assert ev(schedule, 0.0) == ev(base, 0.0)
    assert float(jax.grad(schedule)(0.55)) == 0.0
