"""Tests for ``gen.diffusion.samplers._dpm_solver``: DPM-Solver++ (2M, 3M) and DPM-Solver++(2M)
SDE. References: diffusers' DPMSolverMultistepScheduler (dpmsolver++ with the midpoint solver,
and sde-dpmsolver++), lower-order final steps included, written out step by step in float64 numpy
(sharing no code with ``gen.diffusion.samplers``; helpers in ``sampler_references``), and that
scheduler itself, run on the same toy denoiser with our per-step noise (skipped without torch and
diffusers)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampler_references import (
    LINEAR,
    SHAPE,
    SHAPE4,
    T,
    check_close,
    import_diffusers,
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


def ref_dpmpp(x, ts, lam, param, order, lower_order_final=True, z=None):
    """diffusers' DPMSolverMultistepScheduler (dpmsolver++, midpoint), written out; with noise
    ``z``, its sde-dpmsolver++ (orders 1 and 2)."""
    n = len(ts) - 1
    alpha, sigma = np_alpha_sigma(lam)
    with np.errstate(divide="ignore"):
        lamh = np.log(alpha) - np.log(sigma)
    final_zero = ts[-1] == 0
    x, outs = x.copy(), []
    for i in range(n):
        x0, _ = np_x0_eps(toy(x, np.full(len(x), ts[i]), np), x, alpha[i], sigma[i], param)
        outs.append(x0)
        lower_final = i == n - 1 and ((lower_order_final and n < 15) or final_zero)
        lower_second = i == n - 2 and lower_order_final and n < 15
        h = lamh[i + 1] - lamh[i]
        ratio, a_t = sigma[i + 1] / sigma[i], alpha[i + 1]
        if z is not None:
            e2h = np.exp(-2.0 * h)
            d = outs[-1]
            if not (i < 1 or lower_final):  # 2M SDE: order 2 after the first step
                d = d + 0.5 * (outs[-1] - outs[-2]) * h / (lamh[i] - lamh[i - 1])
            noise = sigma[i + 1] * np.sqrt(1 - e2h) * z[i]
            x = ratio * np.exp(-h) * x + a_t * (1 - e2h) * d + noise
            continue
        if order == 1 or i < 1 or lower_final:
            x = ratio * x - a_t * (np.exp(-h) - 1) * outs[-1]
        elif order == 2 or i < 2 or lower_second:
            r0 = (lamh[i] - lamh[i - 1]) / h
            d0, d1 = outs[-1], (outs[-1] - outs[-2]) / r0
            x = ratio * x - a_t * (np.exp(-h) - 1) * d0 - 0.5 * a_t * (np.exp(-h) - 1) * d1
        else:
            r0, r1 = (lamh[i] - lamh[i - 1]) / h, (lamh[i - 1] - lamh[i - 2]) / h
            m0, m1, m2 = outs[-1], outs[-2], outs[-3]
            d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x = (
                ratio * x
                - a_t * (np.exp(-h) - 1) * m0
                + a_t * ((np.exp(-h) - 1) / h + 1) * d1
                - a_t * ((np.exp(-h) - 1 + h) / h**2 - 0.5) * d2
            )
    return x


@pytest.mark.parametrize(
    ("name", "order", "n", "param", "final_one"),
    [
        ("dpmpp_2m", 2, 6, "eps", True),
        ("dpmpp_2m", 2, 16, "v", False),
        ("dpmpp_3m", 3, 7, "x0", True),
        ("dpmpp_3m", 3, 16, "eps", True),
    ],
)
def test_dpm_solver_pp_matches_numpy(name, order, n, param, final_one):
    sched = schedules.ddpm_linear()
    grid = timesteps.linspace(T, n + 1)[:-1]  # diffusers' DPM-Solver "linspace": ends above 0
    ts = samplers.times_from_timesteps(grid, T, set_alpha_to_one=final_one)
    x = x_start(4)
    want = ref_dpmpp(x, ts, lam64(sched, ts), param, order)
    got = run64(samplers.get_sampler(name), toy, param, sched, x, ts)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dpmpp_2m_sde_matches_numpy():
    sched, n, key = schedules.ddpm_linear(), 6, jax.random.key(23)
    ts = samplers.times_from_timesteps(timesteps.trailing(T, n), T)
    with jax.enable_x64(True):
        z = noises(key, n, SHAPE, jnp.float64)
    x = x_start(24)
    want = ref_dpmpp(x, ts, lam64(sched, ts), "v", 2, z=z)
    got = run64(samplers.dpmpp_2m_sde, toy, "v", sched, x, ts, key=key)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="key"):
        samplers.dpmpp_2m_sde(toy, "v", sched, x, ts)


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("order", "n", "prediction"), [(2, 20, "epsilon"), (3, 10, "sample")])
def test_dpm_solver_pp_matches_diffusers(order, n, prediction):
    torch, diffusers = import_diffusers()
    sch = diffusers.DPMSolverMultistepScheduler(
        solver_order=order, algorithm_type="dpmsolver++", prediction_type=prediction, **LINEAR
    )
    sch.set_timesteps(n)
    x = x_start(12, SHAPE4).astype(np.float32)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    param = {"epsilon": "eps", "sample": "x0"}[prediction]
    ours = samplers.get_sampler(f"dpmpp_{order}m")(our_toy, param, schedules.ddpm_linear(), x, ts)
    check_close(ours, sample)


@pytest.mark.parametrize(("order", "prediction"), [(1, "epsilon"), (2, "v_prediction")])
def test_dpmpp_2m_sde_matches_diffusers(order, prediction):
    torch, diffusers = import_diffusers()
    sch = diffusers.DPMSolverMultistepScheduler(
        solver_order=2, algorithm_type="sde-dpmsolver++", prediction_type=prediction, **LINEAR
    )
    n = 8 if order == 2 else 16  # 16 steps: no lower-order final steps
    sch.set_timesteps(n)
    key, x = jax.random.key(7), x_start(28, SHAPE4).astype(np.float32)
    noise = noises(key, n, SHAPE4, jnp.float32)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        out = model(sample, t)
        sample = sch.step(out, t, sample, variance_noise=torch.from_numpy(noise[i].copy()))
        sample = sample.prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    param = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    ours = samplers.dpmpp_2m_sde(our_toy, param, schedules.ddpm_linear(), x, ts, key=key)
    assert bool(jnp.all(jnp.isfinite(ours)))
    check_close(ours, sample)
