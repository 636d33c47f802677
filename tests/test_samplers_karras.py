"""Tests for ``gen.diffusion.samplers._karras``: Euler and Heun (with and without churn) and Euler
ancestral. References: Karras et al. 2022, Algorithm 2, in the VE variable, and k-diffusion's
sample_euler_ancestral, written out in float64 numpy (sharing no code with
``gen.diffusion.samplers``; the EDM schedule in closed form and the other helpers are in
``sampler_references``); deterministic DDIM, which is the same Euler step; and diffusers' Euler,
Heun and Euler-ancestral discrete schedulers themselves, run on the same toy denoiser with our
per-step noise (skipped without torch and diffusers)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampler_references import (
    LINEAR,
    RHO,
    SHAPE,
    SHAPE4,
    SMAX,
    SMIN,
    NoiseFeed,
    T,
    check_close,
    discrete_grid,
    edm_coeffs,
    edm_sigma,
    edm_t,
    import_diffusers,
    karras_grid,
    lam64,
    noises,
    np_alpha_sigma,
    np_x0_eps,
    our_toy,
    run64,
    torch_toy,
    toy,
    x_start,
)

from gen.diffusion import samplers, schedules, timesteps

# ----------------------------------------------------------------------------------------------
# Float64 numpy recomputations
# ----------------------------------------------------------------------------------------------


def ref_karras(
    x_vp,
    ts,
    sig,
    coeffs,
    param,
    heun,
    z=None,
    churn=0.0,
    tmin=0.0,
    tmax=np.inf,
    snoise=1.0,
    t_of_sigma=None,
):
    """Karras et al. 2022, Algorithm 2, in the VE variable; coeffs(t) -> (a, s, da, ds)."""
    n = len(ts) - 1

    def denoised(x_ve, t):
        a, s, da, ds = coeffs(t)
        return np_x0_eps(toy(a * x_ve, np.full(len(x_ve), t), np), a * x_ve, a, s, param, da, ds)[0]

    x = x_vp / coeffs(ts[0])[0]
    for i in range(n):
        gamma = min(churn / n, math.sqrt(2) - 1) if tmin <= sig[i] <= tmax else 0.0
        sig_hat = sig[i] * (1 + gamma)
        t_hat = t_of_sigma(sig_hat) if gamma > 0 else ts[i]
        x_hat = x + math.sqrt(sig_hat**2 - sig[i] ** 2) * snoise * z[i] if gamma > 0 else x
        d = (x_hat - denoised(x_hat, t_hat)) / sig_hat
        x = x_hat + (sig[i + 1] - sig_hat) * d
        if heun and sig[i + 1] != 0:
            d2 = (x - denoised(x, ts[i + 1])) / sig[i + 1]
            x = x_hat + (sig[i + 1] - sig_hat) * (d + d2) / 2
    return x * (1.0 if sig[-1] == 0 else coeffs(ts[-1])[0])


def test_euler_matches_numpy_and_ddim():
    sched = schedules.ddpm_linear()
    ts = discrete_grid(8)
    lam = lam64(sched, ts)
    with np.errstate(over="ignore"):
        sig = np.exp(-lam / 2)

    def coeffs(t):
        a, s = np_alpha_sigma(lam[list(ts).index(t)])
        return a, s, None, None

    x = x_start(5)
    want = ref_karras(x, ts, sig, coeffs, "eps", heun=False)
    got = run64(samplers.euler, toy, "eps", sched, x, ts)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # Deterministic DDIM is the same Euler step in the VE variable.
    np.testing.assert_allclose(run64(samplers.ddim, toy, "eps", sched, x, ts), want, rtol=1e-9)


@pytest.mark.parametrize(
    ("name", "param", "s_churn"),
    [("euler", "eps", 1.5), ("heun", "velocity", 4.0)],  # gamma 1.5/6, and capped at sqrt(2)-1
)
def test_karras_with_churn_matches_numpy(name, param, s_churn):
    sched, n, key = schedules.edm(SMIN, SMAX, RHO), 6, jax.random.key(11)
    ts = karras_grid(n)  # [1, ..., 0 (sigma_min), 0 (clean)]
    sig = np.append(edm_sigma(ts[:-1]), 0.0)
    with jax.enable_x64(True):
        z = noises(key, n, SHAPE, jnp.float64)
    x = x_start(6)
    want = ref_karras(
        x,
        ts,
        sig,
        edm_coeffs,
        param,
        heun=name == "heun",
        z=z,
        churn=s_churn,
        tmin=0.01,
        tmax=20.0,
        snoise=1.007,
        t_of_sigma=edm_t,
    )
    churn = {"s_churn": s_churn, "s_tmin": 0.01, "s_tmax": 20.0, "s_noise": 1.007}
    got = run64(samplers.get_sampler(name), toy, param, sched, x, ts, key=key, **churn)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_heun_matches_numpy_with_final_sigma_min():
    sched = schedules.ddpm_linear()
    ts = samplers.times_from_timesteps(timesteps.trailing(T, 5), T, set_alpha_to_one=False)
    lam = lam64(sched, ts)
    sig = np.exp(-lam / 2)

    def coeffs(t):
        a, s = np_alpha_sigma(lam[int(np.argmin(np.abs(ts - t)))])
        return a, s, None, None

    want = ref_karras(x_start(7), ts, sig, coeffs, "x0", heun=True)
    got = run64(samplers.heun, toy, "x0", sched, x_start(7), ts)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_euler_ancestral_matches_numpy():
    sched, n, key, eta = schedules.cosine(), 6, jax.random.key(5), 0.7
    with jax.enable_x64(True):
        ts = np.asarray(timesteps.uniform_logsnr(sched, n, t_max=0.99), np.float64)
        z = noises(key, n, SHAPE, jnp.float64)
    lam = lam64(sched, ts)
    alpha, sigma = np_alpha_sigma(lam)
    sig = sigma / alpha
    x = x_start(8) / alpha[0]
    for i in range(n):  # k-diffusion's sample_euler_ancestral
        x0, _ = np_x0_eps(
            toy(alpha[i] * x, np.full(len(x), ts[i]), np), alpha[i] * x, alpha[i], sigma[i], "x0"
        )
        up = min(
            sig[i + 1],
            eta * math.sqrt(sig[i + 1] ** 2 * (sig[i] ** 2 - sig[i + 1] ** 2) / sig[i] ** 2),
        )
        down = math.sqrt(sig[i + 1] ** 2 - up**2)
        x = x + (down - sig[i]) * (x - x0) / sig[i]
        if sig[i + 1] > 0:
            x = x + z[i] * up
    got = run64(samplers.euler_ancestral, toy, "x0", sched, x_start(8), ts, key=key, eta=eta)
    np.testing.assert_allclose(got, x, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "prediction"),
    [("euler", "epsilon"), ("heun", "epsilon"), ("euler_ancestral", "epsilon"),
     ("euler_ancestral", "v_prediction")],
)
def test_karras_samplers_match_diffusers(name, prediction, monkeypatch):
    torch, diffusers = import_diffusers()
    cls = {
        "euler": diffusers.EulerDiscreteScheduler,
        "heun": diffusers.HeunDiscreteScheduler,
        "euler_ancestral": diffusers.EulerAncestralDiscreteScheduler,
    }[name]
    sch = cls(prediction_type=prediction, **LINEAR)
    sch.set_timesteps(10)  # linspace: timesteps 999, 888, ..., 0 are integers
    key, x = jax.random.key(4), x_start(13, SHAPE4).astype(np.float32)
    if name == "euler_ancestral":
        feed = NoiseFeed(torch, noises(key, 10, SHAPE4, jnp.float32))
        monkeypatch.setattr(
            diffusers.schedulers.scheduling_euler_ancestral_discrete, "randn_tensor", feed
        )
    model = torch_toy(torch)
    # The VE variable x / alpha. (diffusers' init_noise_sigma is sigma_max, not
    # sqrt(sigma_max^2 + 1), for linspace spacing; the step rules are what is compared here.)
    sample = torch.from_numpy(x) * float((sch.sigmas[0] ** 2 + 1) ** 0.5)
    for t in sch.timesteps:
        out = model(sch.scale_model_input(sample, t), t)
        sample = sch.step(out, t, sample).prev_sample
    grid = np.unique(sch.timesteps.numpy())[::-1]
    assert np.array_equal(grid, np.round(grid)) and len(grid) == 10
    ts = samplers.times_from_timesteps(grid.astype(np.int64), T)
    param = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    ours = samplers.get_sampler(name)(our_toy, param, schedules.ddpm_linear(), x, ts, key=key)
    check_close(ours, sample)
