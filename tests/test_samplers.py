"""Samplers: diffusers' published DDIM value, float64 numpy recomputations, diffusers itself.

The numpy references below are written out in the papers' (and diffusers') own form, step by
step; they share no code with ``gen.diffusion.samplers``. They take log-SNR values on the grid
from ``gen.diffusion.schedules`` (or from closed forms) and noise from ``jax.random`` under the
samplers' documented key convention: step i draws ``normal(split(key, N)[i], x.shape)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params

from gen.diffusion import samplers, schedules, timesteps

T = 1000
SHAPE = (3, 5)


# ----------------------------------------------------------------------------------------------
# Toy denoiser and numpy helpers
# ----------------------------------------------------------------------------------------------


def toy(x, t, xp=jnp):
    """A smooth, nonlinear 'network': works for jax and numpy, any parameterization."""
    t = t.reshape((-1,) + (1,) * (x.ndim - 1))
    return xp.tanh(x) * (0.5 + 0.4 * t) + 0.1 * x * t - 0.05


def np_alpha_sigma(lam):
    with np.errstate(over="ignore"):
        return np.sqrt(1.0 / (1.0 + np.exp(-lam))), np.sqrt(1.0 / (1.0 + np.exp(lam)))


def np_x0_eps(pred, x, a, s, param, da=None, ds=None):
    if param == "eps":
        return (x - s * pred) / a, pred
    if param == "x0":
        return pred, (x - a * pred) / s
    if param == "v":  # a^2 + s^2 = 1
        return a * x - s * pred, s * x + a * pred
    if param == "velocity":
        det = a * ds - s * da
        return (ds * x - s * pred) / det, (a * pred - da * x) / det
    raise AssertionError(param)


def lam64(schedule, ts):
    """Float64 log-SNR on the grid; a final t = 0 is the clean data (+inf)."""
    with jax.enable_x64(True):
        lam = np.array(schedule(jnp.asarray(ts, jnp.float64)), np.float64)
    if ts[-1] == 0:
        lam[-1] = np.inf
    return lam


def noises(key, n, shape, dtype):
    return [np.asarray(jax.random.normal(k, shape, dtype)) for k in jax.random.split(key, n)]


def run64(fn, *args, **kwargs):
    with jax.enable_x64(True):
        args = [jnp.asarray(a, jnp.float64) if isinstance(a, np.ndarray) else a for a in args]
        return np.asarray(fn(*args, **kwargs), np.float64)


def x_start(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape)


def discrete_grid(n, spacing=timesteps.leading):
    return samplers.times_from_timesteps(spacing(T, n), T)


# EDM schedule in closed form, for churn (t of sigma) and the velocity parameterization.
SMIN, SMAX, RHO = 0.002, 80.0, 7.0
LO, SPAN = SMIN ** (1 / RHO), SMAX ** (1 / RHO) - SMIN ** (1 / RHO)


def edm_sigma(t):
    return (LO + t * SPAN) ** RHO


def edm_t(sigma):
    return (sigma ** (1 / RHO) - LO) / SPAN


def edm_coeffs(t):
    """VP (alpha, sigma, d alpha/dt, d sigma/dt) of the EDM schedule at t."""
    sv = edm_sigma(t)
    a, s = 1 / np.sqrt(1 + sv**2), sv / np.sqrt(1 + sv**2)
    dlam = -2 * RHO * SPAN / (LO + t * SPAN)
    return a, s, a * s**2 * dlam / 2, -s * a**2 * dlam / 2


def karras_grid(n):
    """Karras' grid on the EDM schedule: sigma_i at t = 1 - i/(n-1), then sigma = 0 (t = 0)."""
    return np.concatenate([1.0 - np.arange(n) / (n - 1), [0.0]])


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


def ref_ddim(x, ts, lam, param, eta=0.0, clip=None, z=None):
    x = x.copy()
    for i in range(len(ts) - 1):
        ab_t = 1 / (1 + np.exp(-lam[i]))
        ab_s = 1.0 if np.isinf(lam[i + 1]) else 1 / (1 + np.exp(-lam[i + 1]))
        a, s = math.sqrt(ab_t), math.sqrt(1 - ab_t)
        x0, eps = np_x0_eps(toy(x, np.full(len(x), ts[i]), np), x, a, s, param)
        if callable(clip):
            x0 = clip(x0)
        elif clip is not None:
            x0 = np.clip(x0, -clip, clip)
        std = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        x = math.sqrt(ab_s) * x0 + math.sqrt(1 - ab_s - std**2) * eps
        if eta:
            x = x + std * z[i]
    return x


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
# Guidance and conditioning
# ----------------------------------------------------------------------------------------------


def test_classifier_free_guidance_one_batched_call():
    calls = []

    def net(x, t, labels):
        calls.append(x.shape[0])
        return 0.3 * x + 0.1 * labels[:, None].astype(x.dtype) * (1.0 + t[:, None])

    cond = samplers.class_conditional(net)
    x, t = jnp.asarray(x_start(9), jnp.float32), jnp.full((3,), 0.4)
    labels, null, w = jnp.array([0, 2, 5]), 10, 3.0
    out = samplers.with_labels(samplers.guided(cond, w, null), labels)(x, t)
    assert calls == [6]  # one call of size 2B
    xn, tn, ln = np.asarray(x), 0.4, np.array([0, 2, 5])
    pc = 0.3 * xn + 0.1 * ln[:, None] * (1 + tn)
    pu = 0.3 * xn + 0.1 * 10 * (1 + tn)
    np.testing.assert_allclose(np.asarray(out), pu + w * (pc - pu), rtol=1e-6, atol=1e-6)


def test_class_conditional_sampling_passes_labels_through():
    seen = []

    def net(x, t, labels):
        seen.append(labels)
        return toy(x, t) + 0.01 * labels[:, None]

    sched, ts = schedules.ddpm_linear(), discrete_grid(3)
    labels = jnp.array([1, 2, 3])
    got = samplers.ddim(samplers.class_conditional(net), "eps", sched, x_start(), ts, labels=labels)
    plain = samplers.ddim(
        lambda x, t: toy(x, t) + 0.01 * labels[:, None], "eps", sched, x_start(), ts
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(plain), rtol=1e-6)
    assert seen[0].shape == (3,)


def test_guidance_and_labels_errors():
    sched, ts = schedules.ddpm_linear(), discrete_grid(2)
    with pytest.raises(ValueError, match="takes no labels"):
        samplers.guided(toy, 2.0, 0)
    cond = samplers.guided(samplers.class_conditional(lambda x, t, y: x), 2.0, 0)
    with pytest.raises(ValueError, match="pass labels"):
        samplers.ddim(cond, "eps", sched, x_start(), ts)
    with pytest.raises(ValueError, match="takes none"):
        samplers.ddim(toy, "eps", sched, x_start(), ts, labels=jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="batch size"):
        samplers.ddim(cond, "eps", sched, x_start(), ts, labels=jnp.zeros(2, jnp.int32))


# ----------------------------------------------------------------------------------------------
# One program, bad input
# ----------------------------------------------------------------------------------------------


def _count(jaxpr, name):
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for sub in jaxprs_in_params(eqn.params):
            total += _count(sub, name)
    return total


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("ddpm", {"variance": "large"}),
        ("ddim", {"eta": 0.5, "clip_x0": 1.0}),
        ("dpmpp_2m", {}),
        ("dpmpp_3m", {}),
        ("dpmpp_2m_sde", {"x0_transform": samplers.dynamic_threshold(0.9, 1.5)}),
        ("euler", {"s_churn": 1.0}),
        ("heun", {}),
        ("euler_ancestral", {}),
    ],
)
def test_each_sampler_is_one_scan_and_compiles(name, options):
    sampler, sched = samplers.get_sampler(name), schedules.ddpm_linear()
    traces = []

    def net(x, t):
        traces.append(1)
        return toy(x, t)

    def run(x, ts, key):
        return sampler(net, "eps", sched, x, ts, key=key, **options)

    x, key = jnp.asarray(x_start(), jnp.float32), jax.random.key(0)
    for n in (4, 12):
        traces.clear()
        ts = jnp.asarray(discrete_grid(n), jnp.float32)
        jaxpr = jax.make_jaxpr(run)(x, ts, key).jaxpr
        assert _count(jaxpr, "scan") == 1
        assert len(traces) == (2 if name == "heun" else 1)  # traced once, not once per step
    lowered = jax.jit(run).lower(x, ts, key)
    out = lowered.compile()(x, ts, key)
    assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))


def test_bad_input_errors():
    sched, x = schedules.ddpm_linear(), x_start()
    with pytest.raises(ValueError, match=r"Unknown sampler 'dpm_fast'.*ddim"):
        samplers.get_sampler("dpm_fast")
    with pytest.raises(ValueError, match="fewer than one step"):
        samplers.ddim(toy, "eps", sched, x, np.array([0.5]))
    with pytest.raises(ValueError, match="fewer than one step"):
        samplers.euler(toy, "eps", sched, x, np.zeros((0,)))
    with pytest.raises(ValueError, match="times_from_timesteps"):
        samplers.ddim(toy, "eps", sched, x, timesteps.leading(T, 4))
    with pytest.raises(ValueError, match="decrease"):
        samplers.ddim(toy, "eps", sched, x, np.array([0.2, 0.5, 0.0]))
    with pytest.raises(ValueError, match="key"):
        samplers.ddpm(toy, "eps", sched, x, discrete_grid(2))
    with pytest.raises(ValueError, match="parameterization"):
        samplers.ddim(toy, "noise", sched, x, discrete_grid(2))
    with pytest.raises(ValueError, match="variance"):
        samplers.ddpm(
            toy, "eps", sched, x, discrete_grid(2), key=jax.random.key(0), variance="huge"
        )


def test_times_from_sigmas_inverts_the_schedule():
    sched = schedules.ddpm_linear()
    ts = discrete_grid(5)[:-1]
    sig = np.exp(-lam64(sched, ts) / 2)
    with jax.enable_x64(True):
        back = np.asarray(samplers.times_from_sigmas(sched, np.append(sig, 0.0)))
    np.testing.assert_allclose(back, np.append(ts, 0.0), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


def _torch_toy(torch):
    def model(x, timestep):
        s = float(timestep) / T
        return torch.tanh(x) * (0.5 + 0.4 * s) + 0.1 * x * s - 0.05

    return model


def _our_toy(x, t):  # the same function of diffusers' (continuous) timestep t T - 1
    s = (t * T - 1.0) / T
    return toy(x, s)


class _NoiseFeed:
    """Stands in for diffusers' randn_tensor: returns our per-step noise, in call order."""

    def __init__(self, torch, noise):
        self.torch, self.noise, self.calls = torch, list(noise), 0

    def __call__(self, shape, **kwargs):
        out = self.torch.from_numpy(self.noise[self.calls].copy())
        self.calls += 1
        return out


def _diffusers():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    return torch, diffusers


SHAPE4 = (2, 3, 4, 4)
LINEAR = {"num_train_timesteps": T, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}


def _check(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_matches_diffusers(variance, monkeypatch):
    torch, diffusers = _diffusers()
    sch = diffusers.DDPMScheduler(clip_sample=False, variance_type=variance, **LINEAR)
    sch.set_timesteps(8)
    key, x = jax.random.key(1), x_start(10, SHAPE4).astype(np.float32)
    noise = noises(key, 8, SHAPE4, jnp.float32)
    feed = _NoiseFeed(torch, noise)
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", feed)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    assert feed.calls == 7
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.ddpm(
        _our_toy,
        "eps",
        schedules.ddpm_linear(),
        x,
        ts,
        key=key,
        variance=variance.removeprefix("fixed_"),
    )
    _check(ours, sample)


def test_ddim_with_eta_matches_diffusers():
    torch, diffusers = _diffusers()
    sch = diffusers.DDIMScheduler(clip_sample=False, prediction_type="v_prediction", **LINEAR)
    sch.set_timesteps(10)
    key, x = jax.random.key(2), x_start(11, SHAPE4).astype(np.float32)
    noise = noises(key, 10, SHAPE4, jnp.float32)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        sample = sch.step(
            model(sample, t), t, sample, eta=0.6, variance_noise=torch.from_numpy(noise[i].copy())
        ).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.ddim(_our_toy, "v", schedules.ddpm_linear(), x, ts, eta=0.6, key=key)
    _check(ours, sample)


@pytest.mark.parametrize(("order", "n", "prediction"), [(2, 20, "epsilon"), (3, 10, "sample")])
def test_dpm_solver_pp_matches_diffusers(order, n, prediction):
    torch, diffusers = _diffusers()
    sch = diffusers.DPMSolverMultistepScheduler(
        solver_order=order, algorithm_type="dpmsolver++", prediction_type=prediction, **LINEAR
    )
    sch.set_timesteps(n)
    x = x_start(12, SHAPE4).astype(np.float32)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    param = {"epsilon": "eps", "sample": "x0"}[prediction]
    ours = samplers.get_sampler(f"dpmpp_{order}m")(_our_toy, param, schedules.ddpm_linear(), x, ts)
    _check(ours, sample)


@pytest.mark.parametrize(
    ("name", "prediction"),
    [("euler", "epsilon"), ("heun", "epsilon"), ("euler_ancestral", "epsilon"),
     ("euler_ancestral", "v_prediction")],
)
def test_karras_samplers_match_diffusers(name, prediction, monkeypatch):
    torch, diffusers = _diffusers()
    cls = {
        "euler": diffusers.EulerDiscreteScheduler,
        "heun": diffusers.HeunDiscreteScheduler,
        "euler_ancestral": diffusers.EulerAncestralDiscreteScheduler,
    }[name]
    sch = cls(prediction_type=prediction, **LINEAR)
    sch.set_timesteps(10)  # linspace: timesteps 999, 888, ..., 0 are integers
    key, x = jax.random.key(4), x_start(13, SHAPE4).astype(np.float32)
    if name == "euler_ancestral":
        feed = _NoiseFeed(torch, noises(key, 10, SHAPE4, jnp.float32))
        monkeypatch.setattr(
            diffusers.schedulers.scheduling_euler_ancestral_discrete, "randn_tensor", feed
        )
    model = _torch_toy(torch)
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
    ours = samplers.get_sampler(name)(_our_toy, param, schedules.ddpm_linear(), x, ts, key=key)
    _check(ours, sample)


# ----------------------------------------------------------------------------------------------
# Issue 16: dynamic thresholding, DPM-Solver++(2M) SDE, diffusers' DDIM stride, Karras grids
# ----------------------------------------------------------------------------------------------


def np_threshold(x0, ratio, max_value):
    """Imagen's dynamic thresholding, per example (numpy's linear quantile)."""
    flat = x0.reshape(len(x0), -1)
    s = np.clip(np.quantile(np.abs(flat), ratio, axis=1, keepdims=True), 1.0, max_value)
    return (np.clip(flat, -s, s) / s).reshape(x0.shape)


def test_dynamic_threshold_matches_numpy_on_every_branch():
    # rows: quantile below 1 (plain clip), between 1 and max_value, above max_value (capped)
    u = np.random.default_rng(20).uniform(-1.0, 1.0, (3, 2, 7))
    x0 = u / np.abs(u).max(axis=(1, 2), keepdims=True) * np.array([0.5, 1.4, 4.0])[:, None, None]
    fn = samplers.dynamic_threshold(ratio=0.9, max_value=1.5)
    with jax.enable_x64(True):
        got = np.asarray(fn(jnp.asarray(x0)))
    np.testing.assert_allclose(got, np_threshold(x0, 0.9, 1.5), rtol=1e-12, atol=1e-12)
    s = np.quantile(np.abs(x0.reshape(3, -1)), 0.9, axis=1)
    assert s[0] < 1 < s[1] < 1.5 < s[2]
    with pytest.raises(ValueError, match="ratio"):
        samplers.dynamic_threshold(ratio=1.5)
    with pytest.raises(ValueError, match="max_value"):
        samplers.dynamic_threshold(max_value=0.5)


def test_x0_transform_in_ddim_matches_numpy():
    sched, n, key = schedules.ddpm_linear(), 4, jax.random.key(21)
    ts = discrete_grid(n)
    lam = lam64(sched, ts)
    x = 2.0 * x_start(22)
    fn = samplers.dynamic_threshold(ratio=0.8, max_value=2.0)
    with jax.enable_x64(True):
        z = noises(key, n, SHAPE, jnp.float64)
    want = ref_ddim(x, ts, lam, "eps", eta=0.5, clip=lambda x0: np_threshold(x0, 0.8, 2.0), z=z)
    got = run64(samplers.ddim, toy, "eps", sched, x, ts, x0_transform=fn, eta=0.5, key=key)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="x0_transform"):
        samplers.ddim(toy, "eps", sched, x, ts, x0_transform=0.995)


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


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
def test_dynamic_threshold_matches_diffusers(name, monkeypatch):
    torch, diffusers = _diffusers()
    cls = {"ddpm": diffusers.DDPMScheduler, "ddim": diffusers.DDIMScheduler}[name]
    opts = {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}
    sch = cls(clip_sample=False, **opts, **LINEAR)
    sample = torch.from_numpy(2.0 * x_start(25, SHAPE4).astype(np.float32))
    fn = samplers.dynamic_threshold(ratio=0.9, max_value=1.5)
    _check(fn(jnp.asarray(sample.numpy())), sch._threshold_sample(sample))
    sch.set_timesteps(5)
    key, x = jax.random.key(5), x_start(26, SHAPE4).astype(np.float32)
    feed = _NoiseFeed(torch, noises(key, 5, SHAPE4, jnp.float32))
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", feed)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.get_sampler(name)(
        _our_toy, "eps", schedules.ddpm_linear(), x, ts, key=key, x0_transform=fn
    )
    _check(ours, sample)


@pytest.mark.parametrize(("spacing", "n", "eta"), [("trailing", 7, 0.0), ("linspace", 7, 0.5),
                                                   ("leading", 30, 0.0)])
def test_ddim_targets_match_diffusers(spacing, n, eta):
    torch, diffusers = _diffusers()
    sch = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing=spacing, **LINEAR)
    sch.set_timesteps(n)
    key, x = jax.random.key(6), x_start(27, SHAPE4).astype(np.float32)
    noise = noises(key, n, SHAPE4, jnp.float32)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        sample = sch.step(
            model(sample, t), t, sample, eta=eta, variance_noise=torch.from_numpy(noise[i].copy())
        ).prev_sample
    steps = sch.timesteps.numpy()
    ts = samplers.times_from_timesteps(steps, T)
    targets = samplers.diffusers_ddim_targets(steps, T)
    run = lambda **kw: samplers.ddim(
        _our_toy, "eps", schedules.ddpm_linear(), x, ts, eta=eta, key=key, **kw
    )
    _check(run(targets=targets), sample)
    if spacing != "leading":  # there the stride lands on the grid: targets = ts[1:]
        assert np.abs(np.asarray(run()) - sample.numpy()).max() > 1e-3


@pytest.mark.parametrize(("order", "prediction"), [(1, "epsilon"), (2, "v_prediction")])
def test_dpmpp_2m_sde_matches_diffusers(order, prediction):
    torch, diffusers = _diffusers()
    sch = diffusers.DPMSolverMultistepScheduler(
        solver_order=2, algorithm_type="sde-dpmsolver++", prediction_type=prediction, **LINEAR
    )
    n = 8 if order == 2 else 16  # 16 steps: no lower-order final steps
    sch.set_timesteps(n)
    key, x = jax.random.key(7), x_start(28, SHAPE4).astype(np.float32)
    noise = noises(key, n, SHAPE4, jnp.float32)
    model, sample = _torch_toy(torch), torch.from_numpy(x)
    for i, t in enumerate(sch.timesteps):
        out = model(sample, t)
        sample = sch.step(out, t, sample, variance_noise=torch.from_numpy(noise[i].copy()))
        sample = sample.prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    param = {"epsilon": "eps", "v_prediction": "v"}[prediction]
    ours = samplers.dpmpp_2m_sde(_our_toy, param, schedules.ddpm_linear(), x, ts, key=key)
    assert bool(jnp.all(jnp.isfinite(ours)))
    _check(ours, sample)


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m"])
def test_karras_times_match_diffusers(name):
    torch, diffusers = _diffusers()
    if name == "dpmpp_2m":
        sch = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True, **LINEAR)
    else:
        cls = {"euler": diffusers.EulerDiscreteScheduler, "heun": diffusers.HeunDiscreteScheduler}
        sch = cls[name](use_karras_sigmas=True, **LINEAR)
    n = 6
    sch.set_timesteps(n)
    x = x_start(29, SHAPE4).astype(np.float32)
    model = _torch_toy(torch)
    scale = 1.0 if name == "dpmpp_2m" else float((sch.sigmas[0] ** 2 + 1) ** 0.5)  # VE start
    sample = torch.from_numpy(x) * scale
    for t in sch.timesteps:
        out = model(sch.scale_model_input(sample, t), t)
        sample = sch.step(out, t, sample).prev_sample
    ts = samplers.karras_times(schedules.ddpm_linear(), n, num_train_steps=T)
    net = _our_toy
    if name == "dpmpp_2m":  # diffusers rounds the model's timestep (not the sigma) there
        np.testing.assert_array_equal(sch.timesteps.numpy(), np.round(ts[:-1] * T - 1))

        def net(x, t):
            return toy(x, jnp.round(t * T - 1.0) / T)
    else:
        np.testing.assert_allclose(np.unique(sch.timesteps.numpy())[::-1], ts[:-1] * T - 1,
                                   rtol=1e-5, atol=2e-3)
    ours = samplers.get_sampler(name)(net, "eps", schedules.ddpm_linear(), x, ts)
    _check(ours, sample)


# ----------------------------------------------------------------------------------------------
# Issue 16: learned-range variance (Improved DDPM), a denoiser with 2C output channels
# ----------------------------------------------------------------------------------------------


def toy_v(x, t, xp=jnp):
    """The variance part of a 2C toy model: v in (-1, 1), elementwise in x."""
    t = t.reshape((-1,) + (1,) * (x.ndim - 1))
    return xp.tanh(1.3 * x - 2.0 * t + 0.2)


def toy2(x, t, xp=jnp):
    """A learned-variance toy: the prediction, then v, on the last axis."""
    return xp.concatenate([toy(x, t, xp), toy_v(x, t, xp)], axis=-1)


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


def test_learned_variance_denoisers_are_refused_or_split_by_mean_only():
    sched, ts, key, x = schedules.ddpm_linear(), discrete_grid(3), jax.random.key(0), x_start()
    for name in ("ddim", "dpmpp_2m", "euler", "ddpm"):
        with pytest.raises(ValueError, match="mean_only"):
            samplers.get_sampler(name)(toy2, "eps", sched, x, ts, key=key)
    with pytest.raises(ValueError, match="2C channels"):
        samplers.ddpm(toy, "eps", sched, x, ts, key=key, variance="learned_range")
    with pytest.raises(ValueError, match="learned_range"):
        samplers.ddpm(toy, "eps", sched, x, ts, key=key, variance="learned")
    with pytest.raises(ValueError, match="mean_only: expected a 2C"):
        samplers.ddim(samplers.mean_only(toy), "eps", sched, x, ts)
    got = samplers.ddim(samplers.mean_only(toy2), "eps", sched, x, ts)
    want = samplers.ddim(toy, "eps", sched, x, ts)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    cond = samplers.mean_only(samplers.class_conditional(lambda x, t, y: toy2(x, t)))
    assert isinstance(cond, samplers.ClassConditional)


def test_guidance_of_a_learned_variance_guides_the_prediction_only():
    def net(x, t, labels):
        shift = 0.1 * labels[:, None].astype(x.dtype)
        return jnp.concatenate([0.3 * x + shift, 0.5 * jnp.tanh(x) - shift], axis=-1)

    x, t, labels, w = jnp.asarray(x_start(9), jnp.float32), jnp.full((3,), 0.4), jnp.arange(3), 3.0
    guided = samplers.guided(samplers.class_conditional(net), w, 7, learned_variance=True)
    out = np.asarray(samplers.with_labels(guided, labels)(x, t))
    pc, pu = np.asarray(net(x, t, labels)), np.asarray(net(x, t, jnp.full(3, 7)))
    np.testing.assert_allclose(out[:, :5], pu[:, :5] + w * (pc[:, :5] - pu[:, :5]), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 5:], pc[:, 5:])


def test_ddpm_learned_range_matches_diffusers(monkeypatch):
    """diffusers splits its NCHW output on dim 1; ours is channels last (NHWC, split on the last
    axis). The toy is elementwise, so the two layouts see the same numbers, transposed."""
    torch, diffusers = _diffusers()
    sch = diffusers.DDPMScheduler(clip_sample=False, variance_type="learned_range", **LINEAR)
    sch.set_timesteps(8)
    key, x_nchw = jax.random.key(2), (1.5 * x_start(11, SHAPE4)).astype(np.float32)
    nhwc = (0, 2, 3, 1)
    x = x_nchw.transpose(nhwc)
    noise = noises(key, 8, x.shape, jnp.float32)
    feed = _NoiseFeed(torch, [z.transpose(0, 3, 1, 2) for z in noise])
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
