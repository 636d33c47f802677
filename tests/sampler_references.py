"""Numpy references and helpers shared by the sampler tests (tests/test_samplers_*.py).

The references are written out in the papers' (and diffusers') own form, step by step, in
float64; they share no code with ``gen.diffusion.samplers``. They take log-SNR values on the grid
from ``gen.diffusion.schedules`` (or from closed forms) and noise from ``jax.random`` under the
samplers' documented key convention: step i draws ``normal(split(key, N)[i], x.shape)``. Also
here: the toy denoisers (plain and learned-variance), the EDM schedule in closed form, and the
helpers that run diffusers' schedulers on the same toy with the same noise.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import samplers, timesteps

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
# DDIM in float64 (DDIM's tests, and the x0_transform test of the thresholding ones)
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


# ----------------------------------------------------------------------------------------------
# A learned-range (Improved DDPM) toy: a denoiser with 2C output channels
# ----------------------------------------------------------------------------------------------


def toy_v(x, t, xp=jnp):
    """The variance part of a 2C toy model: v in (-1, 1), elementwise in x."""
    t = t.reshape((-1,) + (1,) * (x.ndim - 1))
    return xp.tanh(1.3 * x - 2.0 * t + 0.2)


def toy2(x, t, xp=jnp):
    """A learned-variance toy: the prediction, then v, on the last axis."""
    return xp.concatenate([toy(x, t, xp), toy_v(x, t, xp)], axis=-1)


# ----------------------------------------------------------------------------------------------
# diffusers itself: its schedulers on the same toy, fed our per-step noise
# ----------------------------------------------------------------------------------------------


def torch_toy(torch):
    def model(x, timestep):
        s = float(timestep) / T
        return torch.tanh(x) * (0.5 + 0.4 * s) + 0.1 * x * s - 0.05

    return model


def our_toy(x, t):  # the same function of diffusers' (continuous) timestep t T - 1
    s = (t * T - 1.0) / T
    return toy(x, s)


class NoiseFeed:
    """Stands in for diffusers' randn_tensor: returns our per-step noise, in call order."""

    def __init__(self, torch, noise):
        self.torch, self.noise, self.calls = torch, list(noise), 0

    def __call__(self, shape, **kwargs):
        out = self.torch.from_numpy(self.noise[self.calls].copy())
        self.calls += 1
        return out


def import_diffusers():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    return torch, diffusers


SHAPE4 = (2, 3, 4, 4)
LINEAR = {"num_train_timesteps": T, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}


def check_close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, atol=1e-5)
