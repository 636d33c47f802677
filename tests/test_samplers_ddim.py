"""Tests for ``gen.diffusion.samplers._ddim``: DDPM (ancestral sampling with the small, large and
learned-range variances) and DDIM (deterministic, clipped, with eta, with either final alpha).
References: diffusers' published DDIM full-loop value; float64 numpy recomputations written out
in the papers' (and diffusers') own form, step by step, sharing no code with
``gen.diffusion.samplers`` (Improved DDPM's eq. 15 for the learned range; helpers in
``sampler_references``); and diffusers' DDPMScheduler and DDIMScheduler themselves, run on the
same toy denoiser with our per-step noise (skipped without torch and diffusers)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampler_references import (
    LINEAR,
    SHAPE,
    SHAPE4,
    NoiseFeed,
    T,
    check_close,
    import_diffusers,
    lam64,
    noises,
    np_x0_eps,
    our_toy,
    ref_ddim,
    run64,
    torch_toy,
    toy,
    toy2,
    toy_v,
    x_start,
)

from gen.diffusion import samplers, schedules, timesteps

# ----------------------------------------------------------------------------------------------
# The published reference value
# ----------------------------------------------------------------------------------------------


def test_ddim_reproduces_diffusers_published_full_loop_value():
    # diffusers tests/schedulers: dummy_sample_deter, dummy_model, DDIMSchedulerTest.full_loop
    # (linear betas 1e-4..0.02, T = 1000, steps_offset 0, clip_sample, set_alpha_to_one).
    n = 4 * 3 * 8 * 8
    sample = (np.arange(n).reshape(3, 8, 8, 4) / n).transpose(3, 0, 1, 2).astype(np.float32)
    sched = schedules.ddpm_linear(1e-4, 0.02, T)

    def model(x, t):  # x * t / (t + 1) on the integer timestep
        k = schedules.t_to_timestep(t, T).astype(x.dtype)[:, None, None, None]
        return x * k / (k + 1)

    ts = samplers.times_from_timesteps(timesteps.leading(T, 10), T, set_alpha_to_one=True)
    out = np.asarray(samplers.ddim(model, "eps", sched, sample, ts, eta=0.0, clip_x0=1.0))
    assert out.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(np.abs(out).sum(), 172.0067, rtol=1e-4)
    np.testing.assert_allclose(np.abs(out).mean(), 0.223967, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# Float64 numpy recomputations
# ----------------------------------------------------------------------------------------------


def ref_ddpm(x, ts, lam, param, variance, z):
    x = x.copy()
    for i in range(len(ts) - 1):
        ab_t = 1 / (1 + np.exp(-lam[i]))
        ab_s = 1.0 if np.isinf(lam[i + 1]) else 1 / (1 + np.exp(-lam[i + 1]))
        x0, _ = np_x0_eps(
            toy(x, np.full(len(x), ts[i]), np), x, math.sqrt(ab_t), math.sqrt(1 - ab_t), param
        )
        beta = 1 - ab_t / ab_s
        mean = (
            math.sqrt(ab_s) * beta / (1 - ab_t) * x0
            + math.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t) * x
        )
        var = (1 - ab_s) / (1 - ab_t) * beta if variance == "small" else beta
        x = mean + (math.sqrt(var) * z[i] if ts[i + 1] > 0 else 0.0)
    return x


@pytest.mark.parametrize(
    ("param", "variance", "spacing"),
    [("eps", "small", timesteps.leading), ("v", "large", timesteps.trailing)],
)
def test_ddpm_matches_numpy(param, variance, spacing):
    sched, n, key = schedules.ddpm_linear(), 6, jax.random.key(3)
    ts = samplers.times_from_timesteps(spacing(T, n), T)
    x = x_start(1)
    with jax.enable_x64(True):
        z = noises(key, n, SHAPE, jnp.float64)
    want = ref_ddpm(x, ts, lam64(sched, ts), param, variance, z)
    got = run64(samplers.ddpm, toy, param, sched, x, ts, key=key, variance=variance)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_ddim_matches_numpy_deterministic_clipped_and_final_alpha():
    sched = schedules.cosine(num_steps=T)
    x = 1.5 * x_start(2)
    for set_alpha_to_one in (True, False):
        ts = samplers.times_from_timesteps(
            timesteps.leading(T, 7), T, set_alpha_to_one=set_alpha_to_one
        )
        want = ref_ddim(x, ts, lam64(sched, ts), "x0", clip=0.3)
        got = run64(samplers.ddim, toy, "x0", sched, x, ts, clip_x0=0.3)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_ddim_with_eta_matches_numpy():
    sched, n, key = schedules.cosine(), 5, jax.random.key(7)
    with jax.enable_x64(True):
        ts = np.asarray(timesteps.uniform_logsnr(sched, n, t_max=0.98), np.float64)
        z = noises(key, n, SHAPE, jnp.float64)
    want = ref_ddim(x_start(3), ts, lam64(sched, ts), "v", eta=0.5, z=z)
    got = run64(samplers.ddim, toy, "v", sched, x_start(3), ts, eta=0.5, key=key)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Learned-range variance (Improved DDPM), a denoiser with 2C output channels
# ----------------------------------------------------------------------------------------------


def ref_ddpm_learned(x, ts, lam, param, z):
    """Ancestral sampling with iDDPM's eq. 15, the variance mixed in log space."""
    x = x.copy()
    for i in range(len(ts) - 1):
        ab_t = 1 / (1 + np.exp(-lam[i]))
        ab_s = 1.0 if np.isinf(lam[i + 1]) else 1 / (1 + np.exp(-lam[i + 1]))
        t = np.full(len(x), ts[i])
        x0, _ = np_x0_eps(toy(x, t, np), x, math.sqrt(ab_t), math.sqrt(1 - ab_t), param)
        frac = (toy_v(x, t, np) + 1) / 2
        beta = 1 - ab_t / ab_s
        beta_tilde = max((1 - ab_s) / (1 - ab_t) * beta, 1e-20)
        mean = (
            math.sqrt(ab_s) * beta / (1 - ab_t) * x0
            + math.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t) * x
        )
        logvar = frac * math.log(beta) + (1 - frac) * math.log(beta_tilde)
        x = mean + (np.exp(0.5 * logvar) * z[i] if ts[i + 1] > 0 else 0.0)
    return x


@pytest.mark.parametrize(
    ("param", "spacing"), [("eps", timesteps.leading), ("v", timesteps.trailing)]
)
def test_ddpm_learned_range_matches_numpy(param, spacing):
    sched, n, key = schedules.ddpm_linear(), 6, jax.random.key(5)
    ts = samplers.times_from_timesteps(spacing(T, n), T)
    x = x_start(4)
    with jax.enable_x64(True):
        z = noises(key, n, SHAPE, jnp.float64)
    want = ref_ddpm_learned(x, ts, lam64(sched, ts), param, z)
    got = run64(samplers.ddpm, toy2, param, sched, x, ts, key=key, variance="learned_range")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_matches_diffusers(variance, monkeypatch):
    torch, diffusers = import_diffusers()
    sch = diffusers.DDPMScheduler(clip_sample=False, variance_type=variance, **LINEAR)
    sch.set_timesteps(8)
    key, x = jax.random.key(1), x_start(10, SHAPE4).astype(np.float32)
    noise = noises(key, 8, SHAPE4, jnp.float32)
    feed = NoiseFeed(torch, noise)
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", feed)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    assert feed.calls == 7
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.ddpm(
        our_toy,
        "eps",
        schedules.ddpm_linear(),
        x,
        ts,
        key=key,
        variance=variance.removeprefix("fixed_"),
    )
    check_close(ours, sample)


def test_ddim_with_eta_matches_diffusers():
    torch, diffusers = import_diffusers()
    sch = diffusers.DDIMScheduler(clip_sample=False, prediction_type="v_prediction", **LINEAR)
    sch.set_timesteps(10)
    key, x = jax.random.key(2), x_start(11, SHAPE4).astype(np.float32)
    noise = noises(key, 10, SHAPE4, jnp.float32)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        sample = sch.step(
            model(sample, t), t, sample, eta=0.6, variance_noise=torch.from_numpy(noise[i].copy())
        ).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.ddim(our_toy, "v", schedules.ddpm_linear(), x, ts, eta=0.6, key=key)
    check_close(ours, sample)


def test_ddpm_learned_range_matches_diffusers(monkeypatch):
    """diffusers splits its NCHW output on dim 1; ours is channels last (NHWC, split on the last
    axis). The toy is elementwise, so the two layouts see the same numbers, transposed."""
    torch, diffusers = import_diffusers()
    sch = diffusers.DDPMScheduler(clip_sample=False, variance_type="learned_range", **LINEAR)
    sch.set_timesteps(8)
    key, x_nchw = jax.random.key(2), (1.5 * x_start(11, SHAPE4)).astype(np.float32)
    nhwc = (0, 2, 3, 1)
    x = x_nchw.transpose(nhwc)
    noise = noises(key, 8, x.shape, jnp.float32)
    feed = NoiseFeed(torch, [z.transpose(0, 3, 1, 2) for z in noise])
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", feed)

    def model(sample, timestep):
        s = float(timestep) / T
        eps = torch.tanh(sample) * (0.5 + 0.4 * s) + 0.1 * sample * s - 0.05
        return torch.cat([eps, torch.tanh(1.3 * sample - 2.0 * s + 0.2)], dim=1)

    sample = torch.from_numpy(x_nchw)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    assert feed.calls == 7
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.ddpm(
        lambda x, t: toy2(x, (t * T - 1.0) / T), "eps", schedules.ddpm_linear(), x, ts, key=key,
        variance="learned_range",
    )
    theirs = sample.numpy().transpose(nhwc)
    print("max |ours - diffusers|:", np.abs(np.asarray(ours) - theirs).max())
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-5, atol=1e-5)
