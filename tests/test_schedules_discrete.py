"""Tests for ``gen.diffusion.schedules._discrete``: the discrete DDPM schedules (ddpm_linear,
scaled_linear, and the squaredcos_cap_v2 cosine), from_betas and discrete_alphas_cumprod, and
their t_i = (i + 1) / T grid convention. References, recomputed independently of the library:
diffusers' beta schedules and alphas_cumprod written from scheduling_ddpm.py (in diffusers'
float32 dtypes and in float64; ``schedule_references``), the iDDPM cosine in closed form, and
diffusers' DDPMScheduler itself (skipped without torch and diffusers)."""

import math

import numpy as np
import pytest
from schedule_references import (
    built_schedules,
    ev,
    logit,
    ref_alphas_cumprod,
    ref_linear_betas,
)

from gen.diffusion import schedules as S

# All the schedule test files run on one worker (one xdist_group, as when they were one module),
# so the schedules that several of them share (schedule_references.built_schedules) are built
# once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")


# ----------------------------------------------------------------------------------------------
# Independent references, written from diffusers' source
# ----------------------------------------------------------------------------------------------


def ref_scaled_linear_betas(beta_start, beta_end, num):
    # torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
    return np.linspace(beta_start**0.5, beta_end**0.5, num, dtype=np.float64) ** 2


def ref_squaredcos_cap_v2_betas(num, max_beta=0.999):
    # betas_for_alpha_bar(T): min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta),
    # with t1 = i / T and t2 = (i + 1) / T
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / num) / alpha_bar(i / num), max_beta) for i in range(num)]
    )


@pytest.fixture(scope="module")
def built():
    return built_schedules()


# ----------------------------------------------------------------------------------------------
# diffusers' alphas_cumprod
# ----------------------------------------------------------------------------------------------


DISCRETE_CASES = [
    ("linear", S.ddpm_linear, ref_linear_betas, (1e-4, 0.02)),
    ("scaled_linear", S.scaled_linear, ref_scaled_linear_betas, (0.00085, 0.012)),
    ("squaredcos_cap_v2", None, None, None),
]


def _ours_and_ref_betas(name, num):
    if name == "squaredcos_cap_v2":
        return S.cosine(num_steps=num), ref_squaredcos_cap_v2_betas(num)
    _, make, ref_betas, (b0, b1) = next(c for c in DISCRETE_CASES if c[0] == name)
    return make(b0, b1, num), ref_betas(b0, b1, num)


@pytest.mark.parametrize("num", [1000, 7])
@pytest.mark.parametrize("name", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_alphas_cumprod_matches_diffusers_formulas(name, num):
    schedule, betas = _ours_and_ref_betas(name, num)
    ours = S.discrete_alphas_cumprod(schedule, num)
    assert ours.shape == (num,) and ours.dtype == np.float32
    # diffusers' dtypes (float32 betas and 1 - betas): equal to float32 rounding.
    np.testing.assert_allclose(ours, ref_alphas_cumprod(betas), rtol=1e-6, atol=0)
    # All in float64: diffusers' float32 betas move alpha_bar by up to ~1.3e-5 (cosine).
    np.testing.assert_allclose(ours, ref_alphas_cumprod(betas, False), rtol=3e-5, atol=0)


@pytest.mark.parametrize("num", [1000, 7, 1])
@pytest.mark.parametrize("name", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_alphas_cumprod_matches_real_diffusers(name, num):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    schedule, _ = _ours_and_ref_betas(name, num)
    kwargs = {"beta_start": 0.00085, "beta_end": 0.012} if name == "scaled_linear" else {}
    ref = diffusers.DDPMScheduler(num_train_timesteps=num, beta_schedule=name, **kwargs)
    np.testing.assert_allclose(
        S.discrete_alphas_cumprod(schedule, num), ref.alphas_cumprod.numpy(), rtol=1e-6, atol=0
    )


def test_from_betas_roundtrip_and_grid_values():
    betas = np.linspace(0.001, 0.2, 50)
    schedule = S.from_betas(betas)
    abar = ref_alphas_cumprod(betas)
    np.testing.assert_allclose(S.discrete_alphas_cumprod(schedule, 50), abar, rtol=1e-6)
    # float32 evaluation at t_i = (i + 1) / T is the same log-SNR grid.
    t = (np.arange(50) + 1.0) / 50
    np.testing.assert_allclose(ev(schedule, t), logit(abar), rtol=1e-5, atol=1e-5)
    # Piecewise linear in between; the first segment continues linearly to t = 0.
    mid = (t[:-1] + t[1:]) / 2
    np.testing.assert_allclose(
        ev(schedule, mid), (logit(abar[:-1]) + logit(abar[1:])) / 2, rtol=1e-5, atol=1e-5
    )
    lam = logit(abar)
    np.testing.assert_allclose(ev(schedule, 0.0), 2 * lam[0] - lam[1], rtol=1e-5)


def test_single_step_schedule():
    schedule = S.ddpm_linear(num_steps=1)
    lam0 = logit(np.float32(1.0) - np.float32(1e-4))  # diffusers' float32 1 - beta
    expected = [lam0 + math.log(2), lam0 + math.log(2) / 2, lam0]
    np.testing.assert_allclose(ev(schedule, [0.0, 0.5, 1.0]), expected, rtol=1e-6)


def test_discrete_cosine_follows_the_continuous_one_on_the_grid():
    """Checks the t_i = (i + 1) / T convention: diffusers' squaredcos_cap_v2 discretizes
    alpha_bar(t) = f(t) / f(0) at exactly these times (away from the 0.999 cap)."""
    num = 1000
    t = (np.arange(num) + 1.0) / num
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    ours = S.discrete_alphas_cumprod(S.cosine(num_steps=num), num)
    np.testing.assert_allclose(ours[:-1], f[:-1], rtol=3e-5)
    np.testing.assert_allclose(ours[-1], f[-2] * (1 - 0.999), rtol=3e-5)  # the cap
    # The continuous schedule (truncated only below 1e-12 in t) agrees at the same t.
    continuous = S.discrete_alphas_cumprod(S.cosine(logsnr_min=-60.0, logsnr_max=60.0), num)
    np.testing.assert_allclose(ours[:-1], continuous[:-1], rtol=3e-5)


def test_discrete_endpoints(built):
    lam = logit(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    np.testing.assert_allclose(
        ev(built["ddpm_linear"], [0.0, 1.0]), [2 * lam[0] - lam[1], lam[-1]], rtol=1e-5
    )
