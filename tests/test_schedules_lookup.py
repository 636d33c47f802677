"""Tests for ``gen.diffusion.schedules._lookup``: get_schedule, by diffusers' beta_schedule names
and by ours. References: the constructors it names, called directly (identical values), and its
error for an unknown name, which lists the known ones."""

import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import schedules as S

# All the schedule test files run on one worker (one xdist_group, as when they were one module),
# so the schedules that several of them share (schedule_references.built_schedules) are built
# once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")


# ----------------------------------------------------------------------------------------------
# Lookup
# ----------------------------------------------------------------------------------------------


def test_get_schedule():
    t = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_array_equal(
        np.asarray(S.get_schedule("linear", num_steps=10)(t)),
        np.asarray(S.ddpm_linear(num_steps=10)(t)),
    )
    np.testing.assert_array_equal(
        S.discrete_alphas_cumprod(S.get_schedule("squaredcos_cap_v2"), 1000),
        S.discrete_alphas_cumprod(S.cosine(num_steps=1000), 1000),
    )
    for name in ["ddpm_linear", "scaled_linear", "cosine", "sigmoid", "edm"]:
        assert np.all(np.isfinite(np.asarray(S.get_schedule(name)(t))))
    with pytest.raises(ValueError, match=r"Unknown noise schedule 'cosin'.*cosine.*edm"):
        S.get_schedule("cosin")
