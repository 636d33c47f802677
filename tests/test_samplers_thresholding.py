"""Tests for ``gen.diffusion.samplers._thresholding``: Imagen's dynamic thresholding of the
predicted x0 (dynamic_threshold), alone and as a sampler's ``x0_transform``. References: a numpy
transcription (per example, numpy's linear quantile) on each of its branches; the float64 DDIM
recomputation of ``sampler_references`` (no code shared with ``gen.diffusion.samplers``) with that
transcription as its x0 clip; and diffusers' ``_threshold_sample`` and its DDPM and DDIM
schedulers with ``thresholding=True``, run on the same toy denoiser with our per-step noise
(skipped without torch and diffusers)."""

from __future__ import annotations

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
    discrete_grid,
    import_diffusers,
    lam64,
    noises,
    our_toy,
    ref_ddim,
    run64,
    torch_toy,
    toy,
    x_start,
)

from gen.diffusion import samplers, schedules

# ----------------------------------------------------------------------------------------------
# Float64 numpy recomputations
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


# ----------------------------------------------------------------------------------------------
# diffusers itself
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
def test_dynamic_threshold_matches_diffusers(name, monkeypatch):
    torch, diffusers = import_diffusers()
    cls = {"ddpm": diffusers.DDPMScheduler, "ddim": diffusers.DDIMScheduler}[name]
    opts = {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}
    sch = cls(clip_sample=False, **opts, **LINEAR)
    sample = torch.from_numpy(2.0 * x_start(25, SHAPE4).astype(np.float32))
    fn = samplers.dynamic_threshold(ratio=0.9, max_value=1.5)
    check_close(fn(jnp.asarray(sample.numpy())), sch._threshold_sample(sample))
    sch.set_timesteps(5)
    key, x = jax.random.key(5), x_start(26, SHAPE4).astype(np.float32)
    feed = NoiseFeed(torch, noises(key, 5, SHAPE4, jnp.float32))
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", feed)
    model, sample = torch_toy(torch), torch.from_numpy(x)
    for t in sch.timesteps:
        sample = sch.step(model(sample, t), t, sample).prev_sample
    ts = samplers.times_from_timesteps(sch.timesteps.numpy(), T)
    ours = samplers.get_sampler(name)(
        our_toy, "eps", schedules.ddpm_linear(), x, ts, key=key, x0_transform=fn
    )
    check_close(ours, sample)
