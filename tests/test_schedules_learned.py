"""Tests for ``gen.diffusion.schedules._learned``: VDM's learned, monotone log-SNR network
(learned). References: its documented endpoints (gamma_min, gamma_max) and VDM's nearly linear
init, finite and nonzero gradients for its params, and strict monotonicity at random params
(``schedule_references.random_learned_params``)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from schedule_references import (
    LEARNED,
    ev,
    random_learned_params,
)

from gen.diffusion import schedules as S

# All the schedule test files run on one worker (one xdist_group, as when they were one module),
# so the schedules that several of them share (schedule_references.built_schedules) are built
# once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")


# ----------------------------------------------------------------------------------------------
# Learned schedule
# ----------------------------------------------------------------------------------------------


def test_learned_schedule():
    pair = S.learned()
    params = pair.init(jax.random.key(0))
    assert params["w2"].shape == (1024,)
    schedule = functools.partial(pair.apply, params)
    t = jnp.linspace(0.0, 1.0, 101)
    lam = ev(schedule, t)
    np.testing.assert_allclose(lam[[0, -1]], [13.3, -5.0], rtol=1e-5)
    # VDM's init is nearly linear in gamma.
    np.testing.assert_allclose(lam, 13.3 - 18.3 * np.asarray(t), atol=0.05)

    def loss(p):
        return jnp.mean(pair.apply(p, t) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["w2"]).sum()) > 0


@pytest.mark.parametrize("seed", range(4))
def test_learned_schedule_is_monotone_at_random_params(seed):
    params = random_learned_params(jax.random.key(10 + seed), 128)
    lam = ev(functools.partial(LEARNED.apply, params), np.linspace(0.0, 1.0, 2001))
    assert np.all(np.diff(lam) < 0)
    np.testing.assert_allclose(lam[[0, -1]], [13.3, -5.0], rtol=1e-5)
