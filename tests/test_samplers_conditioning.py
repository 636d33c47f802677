"""Tests for ``gen.diffusion.samplers._conditioning``: class conditioning (class_conditional,
with_labels), classifier-free guidance (guided, in one batched call) and mean_only, which lets
every sampler run a learned-variance (2C-channel) denoiser. References: the guidance formula
``uncond + w (cond - uncond)`` in numpy on a linear toy network (on the prediction only, for a
learned variance), an unconditional sampler with the labels baked in, and the plain toy of
``sampler_references``; also the errors for labels given to, or missing from, the wrong kind of
denoiser, and the refusal of a 2C output by every sampler but ``ddpm(variance="learned_range")``
that points to mean_only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampler_references import (
    discrete_grid,
    toy,
    toy2,
    x_start,
)

from gen.diffusion import samplers, schedules

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
# Learned variance: refused, split by mean_only, guided on the prediction only
# ----------------------------------------------------------------------------------------------


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
