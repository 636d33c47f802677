"""Parameterization conversions, checked in float64 against the defining equations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import schedules
from gen.diffusion.parameterization import (
    PARAMETERIZATIONS,
    Coefficients,
    convert,
    from_x0_eps,
    rectified_flow_coefficients,
    to_x0_eps,
    vp_coefficients,
)


def _paths():
    t = jnp.asarray([0.03, 0.3, 0.7, 0.97])[:, None]
    return {"vp_cosine": vp_coefficients(schedules.cosine(), t),
            "rectified_flow": rectified_flow_coefficients(t)}


def _defining_prediction(name, x0, eps, c):
    """Each parameterization written from its definition, not from the module's code."""
    xt = c.alpha * x0 + c.sigma * eps
    if name == "eps":
        return eps
    if name == "x0":
        return x0
    if name == "v":
        return c.alpha * eps - c.sigma * x0
    if name == "score":  # the score of N(alpha x0, sigma^2 I) at x_t
        return -(xt - c.alpha * x0) / c.sigma**2
    return c.d_alpha * x0 + c.d_sigma * eps


@pytest.mark.parametrize("path", ["vp_cosine", "rectified_flow"])
@pytest.mark.parametrize("name", PARAMETERIZATIONS)
def test_round_trip_through_x0_eps(path, name):
    with jax.enable_x64(True):
        c = Coefficients(*(jnp.asarray(v, jnp.float64) for v in _paths()[path]))
        rng = np.random.default_rng(0)
        x0, eps = rng.normal(size=(2, 4, 5)) * 3
        xt = c.alpha * x0 + c.sigma * eps
        pred = _defining_prediction(name, x0, eps, c)
        x0_hat, eps_hat = to_x0_eps(pred, xt, c, name)
        np.testing.assert_allclose(x0_hat, x0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(eps_hat, eps, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(from_x0_eps(x0, eps, c, name), pred, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("source,target", itertools.permutations(PARAMETERIZATIONS, 2))
def test_convert_between_every_pair(source, target):
    with jax.enable_x64(True):
        c = Coefficients(*(jnp.asarray(v, jnp.float64) for v in _paths()["vp_cosine"]))
        rng = np.random.default_rng(1)
        x0, eps = rng.normal(size=(2, 4, 3))
        xt = c.alpha * x0 + c.sigma * eps
        out = convert(_defining_prediction(source, x0, eps, c), xt, c, source, target)
        np.testing.assert_allclose(out, _defining_prediction(target, x0, eps, c), rtol=1e-9,
                                   atol=1e-9)


def test_vp_velocity_is_the_time_derivative_of_the_path():
    sched = schedules.cosine()
    with jax.enable_x64(True):
        x0, eps = np.random.default_rng(2).normal(size=(2, 3))
        t, h = 0.4, 1e-6
        path = lambda s: (lambda a, si: a * x0 + si * eps)(*schedules.alpha_sigma(sched, s))
        fd = (path(t + h) - path(t - h)) / (2 * h)
        c = vp_coefficients(sched, jnp.asarray(t))
        np.testing.assert_allclose(from_x0_eps(x0, eps, c, "velocity"), fd, rtol=1e-5)


def test_unknown_parameterization():
    c = rectified_flow_coefficients(jnp.asarray(0.5))
    with pytest.raises(ValueError, match="unknown parameterization 'epsilon'"):
        to_x0_eps(jnp.zeros(2), jnp.zeros(2), c, "epsilon")
