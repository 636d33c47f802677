"""Tests for ``gen.flows.image._multiscale`` and the image models built on it
(gen.flows.image_models: glow, realnvp_image), against independent references: factor-out
semantics (identity steps give the identity, the factored-out half is the last 2C channels of the
squeezed latent), Glow's data init checked by hand on its first ActNorm with its log_prob and
sampling end to end, the logit preprocessing's Jacobian counted in the likelihood (its closed
form in float64 numpy), class conditioning of realnvp_image, and shape validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry

TINY = dict(hidden_channels=8, num_blocks=1, num_groups=2)


def _moments(h):
    return np.asarray(h).mean(axis=(0, 1, 2)), np.asarray(h).std(axis=(0, 1, 2))


def test_glow_data_init_log_prob_and_sampling():
    shape = (4, 4, 1)
    flow = flows.glow(shape, num_scales=2, num_steps=2, **TINY)
    x = jax.random.uniform(jax.random.key(0), (32, *shape), minval=0.0, maxval=0.6)
    params = flow.init(jax.random.key(1), x[0])
    params = flows.actnorm_data_init(params, flow, x)
    # The first ActNorm of the data -> latent pass: logit, squeeze, then the last scan copy of
    # scale 0's ActNorm (params["bijector"] = (core, ()), core = ((), inner, prior, steps, ())).
    steps = params["bijector"][0][3]
    an_params = jax.tree.map(lambda a: a[-1], steps[2])
    h = jax.vmap(flows.logit_preprocess(0.05).inverse, (None, 0))((), x)[0]
    h = jax.vmap(flows.squeeze().forward, (None, 0))((), h)[0]
    h = jax.vmap(flows.actnorm().inverse, (None, 0))(an_params, h)[0]
    mean, std = _moments(h)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(std, 1.0, atol=1e-3)

    @jax.jit
    def run(params, key):
        lp = jax.vmap(flow.log_prob, (None, 0))(params, x)
        samples, lp_s = jax.vmap(flow.sample_and_log_prob, (None, 0))(
            params, jax.random.split(key, 4)
        )
        return lp, samples, lp_s, jax.vmap(flow.log_prob, (None, 0))(params, samples)

    lp, samples, lp_s, lp_again = jax.tree.map(np.asarray, run(params, jax.random.key(2)))
    assert lp.shape == (32,) and np.all(np.isfinite(lp))
    assert samples.shape == (4, *shape)
    np.testing.assert_allclose(lp_s, lp_again, rtol=1e-3, atol=1e-2)


def test_logit_preprocessing_is_counted_in_the_likelihood():
    shape, alpha = (4, 4, 2), 0.05
    kwargs = dict(num_scales=1, num_steps=2, **TINY)
    with_logit = flows.realnvp_image(shape, logit=alpha, **kwargs)
    core = flows.realnvp_image(shape, logit=None, **kwargs)
    y = jax.random.uniform(jax.random.key(0), (3, *shape))
    params = with_logit.init(jax.random.key(1), y[0])
    params = {**params, "bijector": registry.perturb(params["bijector"], seed=4)}
    core_params = {"base": params["base"], "bijector": params["bijector"][0]}

    y64 = np.asarray(y, np.float64)
    p = alpha + (1 - 2 * alpha) * y64
    t = np.log(p) - np.log1p(-p)
    ldj = np.sum(np.log(1 - 2 * alpha) - np.log(p) - np.log1p(-p), axis=(1, 2, 3))
    lp_full = jax.jit(jax.vmap(with_logit.log_prob, (None, 0)))(params, y)
    lp_core = jax.jit(jax.vmap(core.log_prob, (None, 0)))(core_params, jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(lp_full, np.asarray(lp_core) + ldj, rtol=1e-5, atol=1e-3)
    assert np.all(np.abs(ldj) > 10)  # a term that matters


def test_multi_scale_factors_out_half_and_keeps_the_data_layout():
    """With identity steps the multi-scale bijector is the identity (latent layout = data
    layout); the next scale only touches the kept half: the last 2C channels of the squeezed
    latent are the factored-out variables."""
    shape = (4, 4, 2)
    bij = flows.multi_scale(shape, 2, lambda s: flows.actnorm())
    x = registry.signed(7, shape)
    params = bij.init(jax.random.key(0), x)
    z, ldj = bij.inverse(params, x)
    np.testing.assert_array_equal(z, x)
    assert ldj == 0.0
    # params: ((), inner = ((), actnorm, ()), actnorm, ())
    sq, inner, an0, unsq = params
    params_inner = (sq, registry.perturb(inner, seed=1), an0, unsq)
    z_inner, _ = bij.inverse(params_inner, x)
    zs, xs = flows.squeeze().forward((), z_inner)[0], flows.squeeze().forward((), x)[0]
    np.testing.assert_array_equal(zs[..., 4:], xs[..., 4:])  # factored out at scale 0
    assert np.all(zs[..., :4] != xs[..., :4])
    # Perturbing scale 0's step changes everything, and the factored half is its output.
    params_all = registry.perturb(params, seed=2)
    z_all, _ = bij.inverse(params_all, x)
    h = flows.actnorm().inverse(params_all[2], xs)[0]
    np.testing.assert_allclose(flows.squeeze().forward((), z_all)[0][..., 4:], h[..., 4:],
                               rtol=1e-6)


def test_class_conditional_realnvp_image():
    shape = (4, 4, 1)
    flow = flows.class_conditional(
        flows.realnvp_image(shape, num_scales=2, num_steps=1, context_dim=3, logit=None,
                            learned_prior=True, **TINY),
        num_classes=3,
    )
    x = registry.signed(8, shape)
    params = flow.init(jax.random.key(0), x, 0)
    params = {**params, "bijector": registry.perturb(params["bijector"], seed=5)}

    @jax.jit
    def run(params, x):
        lps = jax.vmap(flow.log_prob, (None, None, 0))(params, x, jnp.arange(3))
        return lps, flow.sample(params, jax.random.key(1), 2)

    lps, sample = run(params, x)
    assert np.all(np.isfinite(lps)) and len(set(np.round(np.asarray(lps), 4))) == 3
    assert sample.shape == shape
    with pytest.raises(ValueError, match="class label"):
        flow.log_prob(params, x)


def test_shape_validation():
    with pytest.raises(ValueError, match=r"divisible by 4.*\(4, 6, 1\)"):
        flows.glow((4, 6, 1), num_scales=2)
    with pytest.raises(ValueError, match=r"divisible by 2.*\(3, 4, 1\)"):
        flows.realnvp_image((3, 4, 1), num_scales=2)
    flows.realnvp_image((3, 5, 1), num_scales=1)  # no squeeze at one scale
    with pytest.raises(ValueError, match="num_scales"):
        flows.multi_scale((4, 4, 1), 0, lambda s: flows.actnorm())
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        flows.glow((4, 4))
    with pytest.raises(ValueError, match="num_steps"):
        flows.glow((4, 4, 1), num_steps=0)
    bij = flows.multi_scale((4, 4, 2), 1, lambda s: flows.actnorm())
    with pytest.raises(ValueError, match=r"expected one event of shape \(4, 4, 2\).*\(8, 8, 2\)"):
        bij.init(jax.random.key(0), jnp.zeros((8, 8, 2)))
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, C\)"):
        flows.actnorm().init(jax.random.key(0), jnp.zeros(4))
    # One scale, Glow's default top: squeeze, step, unsqueeze; the step sees (2, 2, 8).
    assert bij.init(jax.random.key(0), jnp.zeros((4, 4, 2)))[1].loc.shape == (8,)
