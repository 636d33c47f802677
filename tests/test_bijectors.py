"""Every bijector in gen.flows.registry through the same checks, plus error behaviour."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry
from gen.nn.mlp import MLP, mlp_input_dim, mlp_output_dim

NAMES = sorted(registry.CASES)
CONDITIONAL = sorted(n for n in NAMES if len(registry.CASES[n]()) == 3)
# Whole models, compositions of cases checked by default (couplings, autoregressive layers and
# splines with their tails, multi_scale_factor_out), also checked as models in test_models.py:
# the slowest to compile, so checked in the slow run.
WHOLE_MODELS = {"glow", "realnvp_image_context", "nsf_coupling", "nsf_autoregressive_conditional",
                "maf_model"}


def _params(names):
    """One param per case, all the tests of a case on one xdist worker (they share its compiled
    checks); the whole models in the slow run."""
    return [pytest.param(n, marks=[pytest.mark.xdist_group(f"bijector-{n}")]
                         + ([pytest.mark.slow] if n in WHOLE_MODELS else [])) for n in names]

# Their event shape is whatever init's example event has, so a batch at init is a bigger event.
SHAPE_FROM_INIT = {"shift", "scale", "affine", "spline"}


FACTORS = (1.0, 0.9, 0.7)  # batch = event * factor: stays in the domain, keeps the signs


def _loss(fn, params, v, ctx):
    out, ldj = fn(params, v, ctx)
    return jnp.sum(out**2) + ldj


@functools.cache
def checked(name: str):
    """(bijector, params, x, context, compiled checks) for one case. Params are initialized, then
    perturbed so that zero-initialized layers are not the identity. Compiles dominate the
    runtime, so all float32 checks of a case share one compiled function."""
    case = registry.CASES[name]()
    bij, x = case[0], case[1]
    ctx = case[2] if len(case) == 3 else None
    params = registry.perturb(bij.init(jax.random.key(0), x, ctx), seed=1)
    factors = jnp.array(FACTORS)
    axes = (None, 0, None if ctx is None else 0)

    @jax.jit
    def run(params, x, ctx):
        y, ldj = bij.forward(params, x, ctx)
        x_back, ldj_inv = bij.inverse(params, y, ctx)
        grad = jax.grad(_loss, argnums=(1, 2))
        xs = factors.reshape((-1,) + (1,) * x.ndim) * x
        ctxs = None if ctx is None else factors[:, None] * ctx
        ys, ldjs = jax.vmap(bij.forward, in_axes=axes)(params, xs, ctxs)
        xbs, ldjbs = jax.vmap(bij.inverse, in_axes=axes)(params, ys, ctxs)
        return {
            "y": y,
            "ldj": ldj,
            "x_back": x_back,
            "ldj_inv": ldj_inv,
            "grad_fwd": grad(bij.forward, params, x, ctx),
            "grad_inv": grad(bij.inverse, params, y, ctx),
            "batched": (ys, ldjs, xbs, ldjbs),
            "y_other_ctx": None if ctx is None else bij.forward(params, x, ctx + 1.0)[0],
        }

    return bij, params, x, ctx, run


def results(name: str):
    bij, params, x, ctx, run = checked(name)
    return bij, params, x, ctx, run(params, x, ctx)


@pytest.mark.parametrize("name", _params(NAMES))
def test_round_trip_and_ldj_consistency(name):
    _, _, x, _, r = results(name)
    assert r["y"].shape == x.shape and r["ldj"].shape == ()
    np.testing.assert_allclose(r["x_back"], x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["ldj"], -r["ldj_inv"], rtol=1e-4, atol=1e-4)
    assert not np.allclose(r["y"], x), "params must make the case non-trivial"


def _ldj_and_logdet(fn, params, v, ctx):
    ldj = fn(params, v, ctx)[1]
    jac = jax.jacfwd(lambda u: fn(params, u, ctx)[0])(v).reshape(v.size, v.size)
    sign, logdet = jnp.linalg.slogdet(jac)
    return ldj, logdet, sign


@pytest.mark.parametrize("name", _params(NAMES))
def test_ldj_matches_autodiff_jacobian_in_float64(name):
    bij, params, x, ctx, r = results(name)

    @jax.jit
    def both(p, x, y, c):
        return _ldj_and_logdet(bij.forward, p, x, c), _ldj_and_logdet(bij.inverse, p, y, c)

    with jax.enable_x64(True):
        to64 = lambda a: None if a is None else jnp.asarray(a, jnp.float64)
        args = jax.tree.map(to64, params), to64(x), to64(r["y"]), to64(ctx)
        out = both(*args)
        assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(out))
        (ldj_f, logdet_f, sign_f), (ldj_i, logdet_i, sign_i) = jax.tree.map(np.asarray, out)
    assert sign_f != 0 and sign_i != 0
    np.testing.assert_allclose(ldj_f, logdet_f, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(ldj_i, logdet_i, rtol=1e-7, atol=1e-7)
    # The float32 computation agrees with the float64 one.
    np.testing.assert_allclose(r["ldj"], ldj_f, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r["ldj_inv"], ldj_i, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", _params(NAMES))
def test_gradients_finite(name):
    *_, r = results(name)
    for key in ("grad_fwd", "grad_inv"):
        g_params, g_input = r[key]
        assert np.all(np.isfinite(g_input)) and np.any(g_input != 0)
        for leaf in jax.tree.leaves(g_params):
            assert np.all(np.isfinite(leaf))


@pytest.mark.parametrize("name", _params(NAMES))
def test_jit_vmap_matches_per_event(name):
    _, params, x, ctx, run = checked(name)
    batched = run(params, x, ctx)["batched"]
    for i, factor in enumerate(FACTORS):  # the same compiled function, on one event at a time
        r = run(params, factor * x, None if ctx is None else factor * ctx)
        for got, key in zip(batched, ("y", "ldj", "x_back", "ldj_inv"), strict=True):
            np.testing.assert_allclose(got[i], r[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", _params(sorted(set(NAMES) - registry.SHAPE_AGNOSTIC)))
def test_wrong_event_shape_raises(name):
    bij, params, x, ctx, _ = results(name)
    batch = jnp.stack([x, x])
    expected = rf"expected one (vector )?event of shape .*got shape \(2, {x.shape[0]}"
    for fn in (bij.forward, bij.inverse):
        with pytest.raises(ValueError, match=expected):
            fn(params, batch, ctx)
    if name not in SHAPE_FROM_INIT:
        with pytest.raises(ValueError, match=expected):
            bij.init(jax.random.key(0), batch, ctx)
    if x.ndim == 1:  # a vector event of the wrong length
        with pytest.raises(ValueError, match=rf"got shape \({x.shape[0] + 1},\)"):
            bij.forward(params, jnp.concatenate([x, x[:1]]), ctx)


@pytest.mark.parametrize("name", _params(CONDITIONAL))
def test_context_errors(name):
    bij, params, x, ctx, _ = results(name)
    with pytest.raises(ValueError, match="without context"):
        bij.forward(params, x)
    with pytest.raises(ValueError, match="without context"):
        bij.inverse(params, x)
    with pytest.raises(ValueError, match="context of size"):
        bij.forward(params, x, jnp.concatenate([ctx, ctx]))
    # A context changes the output.
    r = results(name)[-1]
    assert not np.allclose(r["y"], r["y_other_ctx"])


def test_unconditional_coupling_rejects_context():
    bij, params, x, *_ = results("masked_coupling_affine")
    with pytest.raises(ValueError, match="built without context"):
        bij.forward(params, x, jnp.ones(2))


def test_context_dim_requires_context_at_init():
    bij = flows.masked_coupling(np.array([1, 0]), hidden=(4,), context_dim=3)
    with pytest.raises(ValueError, match="without context"):
        bij.init(jax.random.key(0), jnp.zeros(2))
    with pytest.raises(ValueError, match="context of size 3"):
        bij.init(jax.random.key(0), jnp.zeros(2), jnp.zeros(4))


@pytest.mark.parametrize("name", ["masked_coupling_affine", "split_coupling_affine", "lu_linear"])
def test_init_is_near_identity(name):
    case = registry.CASES[name]()
    bij, x = case[0], case[1]
    params = bij.init(jax.random.key(0), x)
    y, ldj = bij.forward(params, x)
    atol = 0.1 if name == "lu_linear" else 0.0  # lu_linear starts at W = P + O(init_scale)
    expected = x if name != "lu_linear" else x[np.array([3, 0, 4, 1, 2])]
    np.testing.assert_allclose(y, expected, atol=atol)
    np.testing.assert_allclose(ldj, 0.0, atol=1e-7)


def test_logit_out_of_domain_is_finite_and_clipped():
    eps = 1e-6
    u = jnp.array([-0.5, 0.0, 1.0, 1.5, 0.3, jnp.inf, -jnp.inf])
    clipped = jnp.clip(u, eps, 1 - eps)
    for bij, fn in ((flows.logit(eps), "forward"), (flows.sigmoid(eps), "inverse")):
        f = getattr(bij, fn)
        y, ldj = f((), u)
        assert np.all(np.isfinite(y)) and np.isfinite(ldj)
        np.testing.assert_allclose(y, jnp.log(clipped) - jnp.log1p(-clipped), rtol=1e-5)
        assert y[0] == y[1] and y[2] == y[3]  # constant outside the clip range
        g = jax.grad(lambda v, f=f: jnp.sum(f((), v)[0]) + f((), v)[1])(u)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[np.array([0, 3, 5, 6])], 0.0)
    # Inside the domain it inverts sigmoid.
    x, _ = flows.logit().forward((), jnp.array([0.2, 0.7]))
    np.testing.assert_allclose(jax.nn.sigmoid(x), [0.2, 0.7], rtol=1e-6)


def test_tanh_inverse_out_of_domain_is_finite():
    y = jnp.array([-2.0, -1.0, 1.0, 3.0, 0.5])
    x, ldj = flows.tanh().inverse((), y)
    assert np.all(np.isfinite(x)) and np.isfinite(ldj)
    g = jax.grad(lambda v: jnp.sum(flows.tanh().inverse((), v)[0]))(y)
    assert np.all(np.isfinite(g))


def test_sigmoid_extreme_inputs_have_finite_ldj():
    x = jnp.array([-200.0, -30.0, 0.0, 30.0, 200.0])
    _, ldj = flows.sigmoid().forward((), x)
    expected = jnp.sum(-jnp.abs(x) - 2 * jnp.log1p(jnp.exp(-jnp.abs(x))))
    np.testing.assert_allclose(ldj, expected, rtol=1e-6)
    _, ldj_t = flows.tanh().forward((), x)
    assert np.isfinite(ldj_t)


def test_factory_validation():
    with pytest.raises(ValueError, match="permutation"):
        flows.permute([0, 0, 1])
    with pytest.raises(ValueError, match="at least one 1"):
        flows.masked_coupling(np.ones(3))
    with pytest.raises(ValueError, match="binary"):
        flows.masked_coupling(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="negative_slope"):
        flows.leaky_relu(0.0)
    with pytest.raises(ValueError, match="Unknown transformer"):
        flows.masked_coupling(np.array([1, 0]), "spline?")
    with pytest.raises(ValueError, match="split_index"):
        flows.split_coupling(3, event_dim=3)
    with pytest.raises(ValueError, match="n >= 1"):
        flows.scan(flows.shift(), 0)
    with pytest.raises(ValueError, match="perm has size"):
        flows.lu_linear(3, perm=[1, 0])


def test_custom_transformer_plugs_in():
    """A Transformer defined outside coupling.py (as the spline will be) works in a coupling."""

    def fwd(raw, x):
        a = jax.nn.softplus(raw[..., 0] + 0.5413248)  # softplus(0.5413) = 1: identity at raw=0
        return a * x + raw[..., 1] * raw[..., 2], jnp.log(a)

    def inv(raw, y):
        a = jax.nn.softplus(raw[..., 0] + 0.5413248)
        return (y - raw[..., 1] * raw[..., 2]) / a, -jnp.log(a)

    t = flows.Transformer(3, fwd, inv)
    bij = flows.split_coupling(1, t, hidden=(8,))
    params = registry.perturb(bij.init(jax.random.key(0), jnp.zeros(3)), seed=1)
    x = registry.signed(0, (3,))

    @jax.jit
    def run(params, x):
        y, ldj = bij.forward(params, x)
        jac = jax.jacfwd(lambda v: bij.forward(params, v)[0])(x)
        return ldj, jnp.linalg.slogdet(jac)[1], *bij.inverse(params, y)

    ldj, logdet, x_back, ldj_inv = run(params, x)
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ldj, -ldj_inv, atol=1e-6)
    np.testing.assert_allclose(ldj, logdet, rtol=1e-4, atol=1e-5)


def test_spline_transformer_plugs_in_by_name_and_by_value():
    spline = pytest.importorskip("gen.flows.rational_quadratic")
    x = registry.signed(2, (4,))
    for t in ("spline", spline.spline_transformer(num_bins=4)):
        bij = flows.masked_coupling(np.array([1, 0, 0, 1]), t, hidden=(8,))
        params = registry.perturb(bij.init(jax.random.key(0), x), seed=2, scale=0.5)

        @jax.jit
        def run(params, x, bij=bij):
            y, ldj = bij.forward(params, x)
            jac = jax.jacfwd(lambda v: bij.forward(params, v)[0])(x)
            return y, ldj, jnp.linalg.slogdet(jac)[1], *bij.inverse(params, y)

        y, ldj, logdet, x_back, ldj_inv = run(params, x)
        assert not np.allclose(y, x)
        np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ldj, -ldj_inv, atol=1e-5)
        np.testing.assert_allclose(ldj, logdet, rtol=1e-4, atol=1e-4)


def test_scan_params_are_stacked_and_compile_size_is_depth_independent():
    layer = flows.chain(flows.masked_coupling(np.array([1, 0, 1]), hidden=(4,)), flows.reverse())
    x = registry.signed(0, (3,))
    sizes = []
    for n in (2, 6):
        bij = flows.scan(layer, n)
        params = jax.eval_shape(bij.init, jax.random.key(0), x)
        assert all(leaf.shape[0] == n for leaf in jax.tree.leaves(params))
        sizes.append(len(jax.make_jaxpr(bij.forward)(params, x).eqns))
    assert sizes[0] == sizes[1]




@pytest.mark.parametrize(
    "mask",
    [
        np.arange(8) % 2 == 0,  # interleave, conditioning dims even
        np.arange(8) % 2 == 1,  # interleave, conditioning dims odd
        np.arange(7) % 2 == 0,  # alternating with unequal halves: scatter
        np.arange(6) < 2,  # contiguous blocks
        np.arange(6) >= 4,
        np.array([1, 0, 0, 1, 0, 1, 1, 0], bool),  # irregular: scatter
        np.array([0, 1, 0], bool),  # one conditioning dim
    ],
)
def test_coupling_take_and_merge_match_gather_and_scatter(mask):
    # The coupling reads and writes its index sets with slices, concatenates and interleaves where
    # it can; every path must equal the gather/scatter it replaces, values and transposes.
    from gen.flows.coupling import _merge, _take

    cond, trans = np.flatnonzero(mask), np.flatnonzero(~mask)
    x = registry.signed(0, (mask.size,))
    new = registry.signed(1, (trans.size,))

    def ours(x, new):
        return _merge(x, _take(x, cond), new * _take(x, trans), cond, trans)

    def reference(x, new):
        return x.at[trans].set(new * x[trans])

    np.testing.assert_array_equal(ours(x, new), reference(x, new))
    cotangent = registry.signed(2, (mask.size,))
    got = jax.vjp(ours, x, new)[1](cotangent)
    want = jax.vjp(reference, x, new)[1](cotangent)
    jax.tree.map(np.testing.assert_array_equal, got, want)


@pytest.mark.parametrize("remat", [None, jax.checkpoint_policies.nothing_saveable])
def test_scan_remat_policies_agree_with_the_default(remat):
    # The default policy saves everything; None (no checkpoint) and nothing_saveable (each step
    # recomputed in the reverse pass) must give the same values and gradients, in both directions.
    layer = flows.chain(flows.masked_coupling(np.array([1, 0, 1]), hidden=(4,)), flows.lu_linear(3))
    x = registry.signed(0, (3,))
    default, other = flows.scan(layer, 3), flows.scan(layer, 3, remat=remat)
    params = default.init(jax.random.key(0), x)

    def step_primitives(b):
        (scan_eqn,) = [e for e in jax.make_jaxpr(b.forward)(params, x).eqns
                       if e.primitive.name == "scan"]
        return {e.primitive.name for e in scan_eqn.params["jaxpr"].eqns}

    assert "remat2" in step_primitives(default)  # the option is applied, not ignored
    assert ("remat2" in step_primitives(other)) == (remat is not None)
    params = jax.tree.map(lambda p: p + 0.1 * registry.signed(1, p.shape), params)
    for direction in ("forward", "inverse"):
        def loss(params, x, b, direction=direction):
            y, ldj = getattr(b, direction)(params, x)
            return jnp.sum(y**2) + ldj

        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
        want = value_and_grad(params, x, default)
        got = value_and_grad(params, x, other)
        jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6), got, want)


def test_mlp():
    net = MLP((8, 8, 5), out_init_zero=True)
    variables = net.init(jax.random.key(0), jnp.ones(3))
    np.testing.assert_array_equal(net.apply(variables, jnp.ones(3)), 0.0)
    assert mlp_input_dim(variables) == 3 and mlp_output_dim(variables) == 5
    net = MLP((4, 2), activation=jax.nn.relu)
    out = net.apply(net.init(jax.random.key(0), jnp.ones(3)), jnp.ones(3))
    assert out.shape == (2,) and np.any(out != 0)
    with pytest.raises(ValueError, match="non-empty"):
        MLP(()).init(jax.random.key(0), jnp.ones(3))


def test_block_leaves_the_rest_untouched_and_checks_indices():
    inner = flows.affine()
    x = registry.signed(3, (6,))
    for indices in (slice(1, 4), [5, 0, 3], [-1, 2]):
        b = flows.block(inner, indices, (6,))
        params = registry.perturb(b.init(jax.random.key(0), x), seed=1)
        y, ldj = b.forward(params, x)
        idx = np.arange(6)[indices]
        rest = np.setdiff1d(np.arange(6), idx)
        np.testing.assert_array_equal(y[rest], x[rest])  # bit for bit
        y_part, ldj_part = inner.forward(params, x[idx])
        np.testing.assert_allclose(y[idx], y_part, rtol=1e-6)
        np.testing.assert_allclose(ldj, ldj_part, rtol=1e-6)
    for bad, match in (([1, 1], "distinct"), ([], "non-empty"), ([0.5], "ints")):
        with pytest.raises(ValueError, match=match):
            flows.block(inner, bad)
    with pytest.raises(ValueError, match="out of range"):
        flows.block(inner, [0, 6]).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="select nothing"):
        flows.block(inner, slice(7, 9)).init(jax.random.key(0), x)
