"""Tests for ``gen.diffusion.samplers._core`` and the registry (get_sampler, SAMPLERS): each sampler
in the registry is one ``lax.scan`` whose jaxpr holds one scan and traces the denoiser once (twice
for Heun) whatever the number of steps, and it jit-compiles as a whole; bad input (an unknown
sampler name, fewer than one step, integer timesteps, a grid that does not decrease, a missing
key, an unknown parameterization or variance) raises a ValueError that says what is wrong. The
toy denoiser and grids come from ``sampler_references``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params
from sampler_references import (
    T,
    discrete_grid,
    toy,
    x_start,
)

from gen.diffusion import samplers, schedules, timesteps

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
