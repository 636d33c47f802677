"""Tests for ``gen.diffusion.samplers._grids``: time grids from noise levels (times_from_sigmas,
karras_times) and diffusers' DDIM step targets (diffusers_ddim_targets, and ``targets=`` in
ddim). References: the schedule's float64 log-SNR on the grid (``sampler_references``, no code
shared with ``gen.diffusion.samplers``), diffusers' DDIM stride written out,
``gen.diffusion.timesteps.karras``' sigmas, and diffusers' DDIM (timestep_spacing), Euler, Heun
and DPM-Solver (use_karras_sigmas) schedulers themselves, run against our samplers on the same
toy denoiser (skipped without torch and diffusers)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampler_references import (
    LINEAR,
    SHAPE4,
    T,
    check_close,
    discrete_grid,
    import_diffusers,
    lam64,
    noises,
    our_toy,
    torch_toy,
    toy,
    x_start,
)

from gen.diffusion import samplers, schedules, timesteps

# ----------------------------------------------------------------------------------------------
# Grids from noise levels, diffusers' DDIM targets
# ----------------------------------------------------------------------------------------------


def test_times_from_sigmas_inverts_the_schedule():
    sched = schedules.ddpm_linear()
    ts = discrete_grid(5)[:-1]
    sig = np.exp(-lam64(sched, ts) / 2)
    with jax.enable_x64(True):
        back = np.asarray(samplers.times_from_sigmas(sched, np.append(sig, 0.0)))
    np.testing.assert_allclose(back, np.append(ts, 0.0), rtol=1e-9, atol=1e-12)


def test_diffusers_ddim_targets():
    got = samplers.diffusers_ddim_targets(timesteps.trailing(T, 7), T)
    assert timesteps.trailing(T, 7)[-1] == 142
    want = np.array([857, 714, 571, 428, 286, 143, 0]) + 1.0  # k - 1000 // 7
    np.testing.assert_array_equal(got * T, want)
    leading = timesteps.leading(T, 7)
    np.testing.assert_array_equal(
        samplers.diffusers_ddim_targets(leading, T, set_alpha_to_one=False),
        samplers.times_from_timesteps(leading, T, set_alpha_to_one=False)[1:],
    )
    ts = samplers.times_from_timesteps(leading, T)
    with pytest.raises(ValueError, match="targets"):
        samplers.ddim(toy, "eps", schedules.ddpm_linear(), x_start(), ts, targets=ts)
    with pytest.raises(ValueError, match="at or below"):
        samplers.ddim(toy, "eps", schedules.ddpm_linear(), x_start(), ts, targets=ts[:-1] + 0.01)


def test_karras_times_hit_the_karras_sigmas():
    sched = schedules.ddpm_linear()
    ts = samplers.karras_times(sched, 6, num_train_steps=T)
    lam = lam64(sched, ts)
    want = timesteps.karras(6, np.exp(-lam[-2] / 2), np.exp(-lam[0] / 2))
    np.testing.assert_allclose(np.exp(-lam / 2), want, rtol=1e-9)
    np.testing.assert_allclose(ts[[0, -2, -1]], [1.0, 1.0 / T, 0.0], atol=1e-12)
    last = samplers.karras_times(sched, 4, num_train_steps=T, sigma_min=0.1, final="sigma_min")
    assert last[-1] == 1.0 / T and last[-2] > 1.0 / T
    with pytest.raises(ValueError, match="final"):
        samplers.karras_times(sched, 4, final="last")


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spacing", "n", "eta"), [("trailing", 7, 0.0), ("linspace", 7, 0.5),
                                                   ("leading", 30, 0.0)])
def test_ddim_targets_match_diffusers(spacing, n, eta):
    torch, diffusers = import_diffusers()
    sch = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing=spacing, **LINEAR)
    sch.set_timesteps(n)
    key, x = jax.random.key(6), x_start(27, SHAPE4).astype(np.float32)
    noise = noises(key, n, SHAPE4, jnp.float32)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        sample = sch.step(
            model(sample, t), t, sample, eta=eta, variance_noise=torch.from_numpy(noise[i].copy())
        ).prev_sample
    steps = sch.timesteps.numpy()
    ts = samplers.times_from_timesteps(steps, T)
    targets = samplers.diffusers_ddim_targets(steps, T)
    run = lambda **kw: samplers.ddim(
        our_toy, "eps", schedules.ddpm_linear(), x, ts, eta=eta, key=key, **kw
    )
    check_close(run(targets=targets), sample)
    if spacing != "leading":  # there the stride lands on the grid: targets = ts[1:]
        assert np.abs(np.asarray(run()) - sample.numpy()).max() > 1e-3


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m"])
def test_karras_times_match_diffusers(name):
    torch, diffusers = import_diffusers()
    if name == "dpmpp_2m":
        sch = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True, **LINEAR)
    else:
        cls = {"euler": diffusers.EulerDiscreteScheduler, "heun": diffusers.HeunDiscreteScheduler}
        sch = cls[name](use_karras_sigmas=True, **LINEAR)
    n = 6
    sch.set_timesteps(n)
    x = x_start(29, SHAPE4).astype(np.float32)
    model = torch_toy(torch)
    scale = 1.0 if name == "dpmpp_2m" else float((sch.sigmas[0] ** 2 + 1) ** 0.5)  # VE start
    sample = torch.from_numpy(x) * scale
    for t in sch.timesteps:
        out = model(sch.scale_model_input(sample, t), t)
        sample = sch.step(out, t, sample).prev_sample
    ts = samplers.karras_times(schedules.ddpm_linear(), n, num_train_steps=T)
    net = our_toy
    if name == "dpmpp_2m":  # diffusers rounds the model's timestep (not the sigma) there
        np.testing.assert_array_equal(sch.timesteps.numpy(), np.round(ts[:-1] * T - 1))

        def net(x, t):
            return toy(x, jnp.round(t * T - 1.0) / T)
    else:
        np.testing.assert_allclose(np.unique(sch.timesteps.numpy())[::-1], ts[:-1] * T - 1,
                                   rtol=1e-5, atol=2e-3)
    ours = samplers.get_sampler(name)(net, "eps", schedules.ddpm_linear(), x, ts)
    check_close(ours, sample)
