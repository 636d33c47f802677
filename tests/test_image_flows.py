"""Image bijectors and models (gen.flows.image, gen.flows.image_models) against independent
references. Registry cases (tests/test_bijectors.py) cover round trips, log-dets against
slogdet(jacfwd) in float64, gradients and jit/vmap for every image bijector; here: layouts,
explicit matrices, data-dependent init, factor-out semantics, the logit Jacobian and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry
from gen.flows.image import ActNormParams
from gen.flows.image._actnorm import _DataInitParams

TINY = dict(hidden_channels=8, num_blocks=1, num_groups=2)


def test_squeeze_is_the_documented_permutation():
    x = np.asarray(registry.signed(0, (4, 6, 3)))
    sq = flows.squeeze()
    y, ldj = jax.jit(sq.forward)((), x)
    expected = np.zeros((2, 3, 12), np.float32)
    for i in range(2):
        for j in range(3):
            for c in range(3):
                for a in range(2):
                    for b in range(2):
                        expected[i, j, 4 * c + 2 * a + b] = x[2 * i + a, 2 * j + b, c]
    np.testing.assert_array_equal(y, expected)
    assert ldj == 0.0 and ldj.shape == ()
    x_back, ldj_inv = jax.jit(sq.inverse)((), y)
    np.testing.assert_array_equal(x_back, x)
    assert ldj_inv == 0.0
    unsq = flows.invert(sq)
    np.testing.assert_array_equal(unsq.forward((), y)[0], x)
    with pytest.raises(ValueError, match=r"even.*\(3, 4, 2\)"):
        sq.forward((), jnp.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match=r"divisible by 4.*\(2, 2, 6\)"):
        unsq.forward((), jnp.zeros((2, 2, 6)))
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, C\)"):
        sq.forward((), jnp.zeros((2, 4, 4, 1)))


def _channel_matrix(params, perm):
    """W = P L (U + diag(exp(log_s))) in NumPy from the raw params."""
    lower = np.tril(np.asarray(params["lower"], np.float64), -1) + np.eye(len(perm))
    upper = np.triu(np.asarray(params["upper"], np.float64), 1) + np.diag(
        np.exp(np.asarray(params["log_s"], np.float64))
    )
    return (lower @ upper)[np.asarray(perm)]


@pytest.mark.parametrize("perm", [None, [2, 0, 3, 1]])
def test_conv1x1_matches_the_explicit_channel_matrix(perm):
    x = registry.signed(1, (3, 5, 4))
    conv = flows.conv1x1(perm)
    params = registry.perturb(conv.init(jax.random.key(0), x), seed=2, scale=0.5)

    @jax.jit
    def run(params, x):
        y, ldj = conv.forward(params, x)
        return y, ldj, *conv.inverse(params, y)

    y, ldj, x_back, ldj_inv = jax.tree.map(np.asarray, run(params, x))
    w = _channel_matrix(params, [3, 2, 1, 0] if perm is None else perm)
    np.testing.assert_allclose(y, np.einsum("hwc,dc->hwd", np.asarray(x, np.float64), w),
                               rtol=1e-5, atol=1e-5)
    sign, logdet = np.linalg.slogdet(w)
    assert sign == np.linalg.det(np.eye(4)[np.asarray([3, 2, 1, 0] if perm is None else perm)])
    np.testing.assert_allclose(ldj, 3 * 5 * logdet, rtol=1e-5)
    np.testing.assert_allclose(ldj_inv, -ldj, rtol=1e-6)
    np.testing.assert_allclose(x_back, np.linalg.solve(w, y.reshape(-1, 4).T).T.reshape(x.shape),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, 4\)"):
        conv.forward(params, jnp.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="perm has size 4"):
        flows.conv1x1([2, 0, 3, 1]).init(jax.random.key(0), jnp.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="permutation"):
        flows.conv1x1([0, 0, 1])


def test_glow_transformer_is_glows_formula():
    raw = registry.signed(3, (5, 2), scale=2.0)
    y = registry.signed(4, (5,))
    t = flows.glow_affine_transformer()
    raw64, y64 = np.asarray(raw, np.float64), np.asarray(y, np.float64)
    s = 1.0 / (1.0 + np.exp(-(raw64[:, 1] + 2.0)))
    x, ldj = t.inverse(raw, y)  # data -> latent: (y + shift) * sigmoid(raw + 2)
    np.testing.assert_allclose(x, (y64 + raw64[:, 0]) * s, rtol=1e-5)
    np.testing.assert_allclose(ldj, np.log(s), rtol=1e-5)
    y_back, ldj_f = t.forward(raw, x)
    np.testing.assert_allclose(y_back, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ldj_f, -np.log(s), rtol=1e-5)


def test_coupling_masks_leave_the_conditioning_half_unchanged():
    x = registry.signed(5, (4, 4, 4))
    ctx_map = registry.signed(6, (4, 4, 3))
    board = (np.add.outer(np.arange(4), np.arange(4)) % 2 == 0)[..., None]
    cases = [
        (flows.checkerboard_coupling(0, "glow", **TINY), None, np.broadcast_to(board, x.shape)),
        (flows.checkerboard_coupling(1, "affine", **TINY), ctx_map,
         np.broadcast_to(~board, x.shape)),
        (flows.channel_coupling(0, "additive", **TINY), None,
         np.broadcast_to(np.arange(4) < 2, x.shape)),
        (flows.channel_coupling(1, "affine", context_dim=3, **TINY), ctx_map,
         np.broadcast_to(np.arange(4) >= 2, x.shape)),
    ]
    for bij, ctx, fixed in cases:
        params = registry.perturb(bij.init(jax.random.key(0), x, ctx), seed=1)
        y, _ = jax.jit(bij.forward)(params, x, ctx)
        np.testing.assert_array_equal(np.asarray(y)[fixed], np.asarray(x)[fixed])
        assert np.all(np.asarray(y)[~fixed] != np.asarray(x)[~fixed])
        if ctx is not None:  # a context map conditions the layer
            assert not np.allclose(bij.forward(params, x, ctx + 1.0)[0], y)
            with pytest.raises(ValueError, match="context of size 3"):
                bij.forward(params, x, ctx[..., :2])
            with pytest.raises(ValueError, match="context map"):
                bij.forward(params, x, ctx[:2])
            with pytest.raises(ValueError, match="without context"):
                bij.inverse(params, y)


def test_coupling_errors():
    with pytest.raises(ValueError, match="even channel count"):
        flows.channel_coupling(**TINY).init(jax.random.key(0), jnp.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="parity"):
        flows.checkerboard_coupling(2)
    bij = flows.checkerboard_coupling(**TINY)
    params = bij.init(jax.random.key(0), jnp.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, 2\).*\(4, 4, 3\)"):
        bij.forward(params, jnp.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="built without context"):
        bij.forward(params, jnp.zeros((4, 4, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="without context"):
        flows.checkerboard_coupling(context_dim=2, **TINY).init(
            jax.random.key(0), jnp.zeros((4, 4, 2))
        )


def _moments(h):
    return np.asarray(h).mean(axis=(0, 1, 2)), np.asarray(h).std(axis=(0, 1, 2))


def test_actnorm_data_init_normalizes_every_layer_in_order():
    """scan of 3 (coupling, 1x1 conv, ActNorm) steps plus an inverted ActNorm: after the data
    init, each ActNorm's output in the data -> latent pass is standardized per channel, given the
    layers before it; other params are untouched."""
    step = flows.chain(flows.channel_coupling(0, "glow", **TINY), flows.conv1x1(), flows.actnorm())
    bij = flows.chain(flows.scan(step, 3), flows.invert(flows.actnorm()))
    x = 3.0 + jnp.array([2.0, 0.5, 1.0, 4.0]) * jax.random.normal(jax.random.key(0), (64, 4, 4, 4))
    params = registry.perturb(jax.jit(bij.init)(jax.random.key(1), x[0]), seed=3)
    new = flows.actnorm_data_init(params, bij, x)

    is_an = lambda p: isinstance(p, ActNormParams)
    old_leaves = jax.tree.leaves(params, is_leaf=is_an)
    new_leaves = jax.tree.leaves(new, is_leaf=is_an)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    assert sum(map(is_an, new_leaves)) == 2
    for old, n in zip(old_leaves, new_leaves, strict=True):
        if is_an(n):
            assert not np.allclose(n.loc, old.loc)
        else:
            np.testing.assert_array_equal(n, old)

    stacked, last = new
    coupling, conv, an = flows.channel_coupling(0, "glow", **TINY), flows.conv1x1(), flows.actnorm()
    h = x
    # invert(actnorm) is the data-side layer: its inverse is actnorm's forward.
    h = jax.vmap(an.forward, (None, 0))(last, h)[0]
    mean, std = _moments(h)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(std, 1.0, atol=1e-3)
    for i in (2, 1, 0):  # scan's inverse runs the copies last to first
        p = jax.tree.map(lambda a, i=i: a[i], stacked)
        h = jax.vmap(an.inverse, (None, 0))(p[2], h)[0]
        mean, std = _moments(h)
        np.testing.assert_allclose(mean, 0.0, atol=1e-4)
        np.testing.assert_allclose(std, 1.0, atol=1e-3)
        h = jax.vmap(conv.inverse, (None, 0))(p[1], h)[0]
        h = jax.vmap(coupling.inverse, (None, 0))(p[0], h)[0]
    # No ActNorm: params come back as they are.
    plain = flows.conv1x1()
    p = plain.init(jax.random.key(0), x[0])
    assert flows.actnorm_data_init(p, plain, x) is p
    # Data-init params outside the helper: a clear error, not a silent result.
    with pytest.raises(ValueError, match="only valid inside actnorm_data_init"):
        flows.actnorm().inverse(_DataInitParams(*last), x[0])


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
