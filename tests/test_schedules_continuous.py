"""Tests for ``gen.diffusion.schedules._continuous``: the continuous cosine (iDDPM, and simple
diffusion's s = 0 form), sigmoid (Chen 2023) and EDM (Karras et al. 2022) schedules, against their
published formulas recomputed in float64 numpy, independently of the library; and the log-SNR at
both ends of [0, 1] of each continuous schedule and of the learned one at init and at random
params."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from schedule_references import (
    built_schedules,
    ev,
    logit,
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
# Continuous constructors against their published formulas (float64)
# ----------------------------------------------------------------------------------------------


def test_cosine_continuous_matches_iddpm():
    t = np.linspace(0.01, 0.99, 99)
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    schedule = S.cosine(logsnr_min=-60.0, logsnr_max=60.0)  # truncation below 1e-12 in t
    with jax.enable_x64(True):
        lam = np.asarray(schedule(jnp.asarray(t)))
    np.testing.assert_allclose(lam, logit(f), rtol=1e-8, atol=1e-8)


def test_cosine_s0_is_simple_diffusion():
    lmin, lmax = -15.0, 15.0
    t = np.linspace(0.0, 1.0, 101)
    t_min, t_max = np.arctan(np.exp(-0.5 * lmax)), np.arctan(np.exp(-0.5 * lmin))
    expected = -2 * np.log(np.tan(t_min + t * (t_max - t_min)))
    ours = ev(S.cosine(s=0.0, logsnr_min=lmin, logsnr_max=lmax), t)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=2e-5)


def test_sigmoid_matches_chen_2023():
    start, end, tau = -3.0, 3.0, 1.1
    t = np.linspace(0.01, 0.99, 99)
    sig = lambda x: 1 / (1 + np.exp(-x))
    v_start, v_end = sig(start / tau), sig(end / tau)
    abar = (v_end - sig((t * (end - start) + start) / tau)) / (v_end - v_start)
    schedule = S.sigmoid(start, end, tau, logsnr_min=-60.0, logsnr_max=60.0)
    with jax.enable_x64(True):
        lam = np.asarray(schedule(jnp.asarray(t)))
    np.testing.assert_allclose(lam, logit(abar), rtol=1e-8, atol=1e-8)


def test_edm_matches_karras():
    sigma_min, sigma_max, rho = 0.002, 80.0, 7.0
    t = np.linspace(0.0, 1.0, 101)
    sigma = (sigma_min ** (1 / rho) + t * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho
    schedule = S.edm(sigma_min, sigma_max, rho)
    np.testing.assert_allclose(ev(schedule, t), -2 * np.log(sigma), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(S.edm_sigma(schedule, jnp.asarray(t, jnp.float32))), sigma, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("name", "lam0", "lam1"),
    [
        ("edm", -2 * math.log(0.002), -2 * math.log(80.0)),
        ("cosine", 20.0, -20.0),
        ("cosine_simple_diffusion", 15.0, -15.0),
        ("sigmoid", 20.0, -20.0),
        ("learned_init", 13.3, -5.0),
        ("learned_random", 13.3, -5.0),
    ],
)
def test_endpoints(built, name, lam0, lam1):
    np.testing.assert_allclose(ev(built[name], [0.0, 1.0]), [lam0, lam1], rtol=1e-5, atol=1e-5)
