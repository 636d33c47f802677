"""MADE (gen/nn/made.py) and the MAF/IAF bijectors (gen/flows/autoregressive.py).

The registry cases (maf_*, iaf_*, nsf_*) go through the generic bijector checks in
test_bijectors.py; here: the autoregressive structure, the two directions, the tails, the
errors, and a cross-check against flowjax with the same weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry
from gen.flows.autoregressive import inverse_autoregressive, masked_autoregressive
from gen.flows.rational_quadratic import spline_transformer
from gen.flows.transformers import Transformer
from gen.nn.made import MADE, hidden_degrees

K = 3  # outputs per dim in the MADE tests


def degrees(dim: int, order) -> np.ndarray:
    """deg[j] = position of dim j in the order, written independently of gen.nn.made."""
    order = list(range(dim)) if order is None else list(order)
    return np.array([order.index(j) for j in range(dim)])


# (dim, hidden, context_dim, order): wide and narrow (< D) hidden layers, none, D = 1.
MADE_CONFIGS = {
    "wide": (5, (16, 16), 0, None),
    "narrow_order": (5, (3,), 0, [2, 0, 4, 1, 3]),
    "narrow_deep_context": (6, (4, 2, 7), 2, [5, 3, 1, 0, 2, 4]),
    "wide_context_order": (4, (12, 9), 3, [3, 1, 0, 2]),
    "no_hidden_context": (4, (), 2, [1, 3, 0, 2]),
    "dim1_context": (1, (4,), 2, None),
}


@pytest.mark.parametrize("config", sorted(MADE_CONFIGS))
def test_made_is_autoregressive(config):
    dim, hidden, context_dim, order = MADE_CONFIGS[config]
    net = MADE(num_params=K, hidden=hidden, order=order)
    x = registry.signed(0, (dim,))
    ctx = registry.signed(1, (context_dim,)) if context_dim else None
    variables = jax.jit(net.init)(jax.random.key(0), x, ctx)
    np.testing.assert_array_equal(net.apply(variables, x, ctx), 0.0)  # zero-init output layer
    variables = registry.perturb(variables, seed=3, scale=0.5)

    @jax.jit
    def jacobians(variables, x, ctx):
        f = lambda v, c: net.apply(variables, v, c)
        jx = jax.jacfwd(f)(x, ctx)
        jc = None if ctx is None else jax.jacfwd(f, argnums=1)(x, ctx)
        batched = net.apply(variables, jnp.stack([x, 2 * x]), ctx)
        return f(x, ctx), jx, jc, batched

    out, jx, jc, batched = jacobians(variables, x, ctx)
    assert out.shape == (dim, K) and jx.shape == (dim, K, dim)
    np.testing.assert_allclose(batched[0], out, rtol=1e-6, atol=1e-6)
    deg = degrees(dim, order)
    allowed = deg[None, :] < deg[:, None]  # [d, j]: output d may depend on input j
    depends = np.any(np.asarray(jx) != 0, axis=1)
    # The autoregressive property, exactly: no dependence on inputs of equal or higher degree.
    assert not np.any(depends & ~allowed), (depends.astype(int), allowed.astype(int))
    if dim > 1:
        assert np.any(depends)
    n_degrees = dim - 1 + (context_dim > 0)
    if all(width >= n_degrees for width in hidden):  # every degree present: full connectivity
        np.testing.assert_array_equal(depends, allowed)
    if ctx is not None:  # every output sees the context, including the first dim in the order
        assert np.all(np.any(np.asarray(jc) != 0, axis=(1, 2)))


def test_made_hidden_degrees():
    np.testing.assert_array_equal(hidden_degrees(4, 7, False), [0, 1, 2, 0, 1, 2, 0])  # cycling
    np.testing.assert_array_equal(hidden_degrees(4, 5, True), [-1, 0, 1, 2, -1])
    np.testing.assert_array_equal(hidden_degrees(8, 3, False), [0, 3, 6])  # spread: 0 and D-2
    np.testing.assert_array_equal(hidden_degrees(1, 2, False), [0, 0])  # nothing reaches out
    with pytest.raises(ValueError, match="permutation of range"):
        MADE(num_params=1, order=(0, 0, 1)).init(jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="permutation of range"):
        MADE(num_params=1, order=(0, 1)).init(jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="hidden widths must be >= 1"):
        MADE(num_params=1, hidden=(4, 0)).init(jax.random.key(0), jnp.zeros(3))


# ------------------------------------------------------------------------------------------ MAF

ORDER = [3, 0, 1, 4, 2]  # dim 1 (in the spline tails) is not last: the last pass is tested
BOUND = 2.0


def _perturbed(bij, x, ctx=None, seed=1, scale=0.2):
    return registry.perturb(jax.jit(bij.init)(jax.random.key(0), x, ctx), seed=seed, scale=scale)


def _events(n: int = 8, dim: int = 5) -> jax.Array:
    """Both signs, several entries beyond the spline bound, the rest inside."""
    x = 1.2 * jax.random.normal(jax.random.key(11), (n, dim))
    return x.at[:, 1].add(jnp.where(x[:, 1] < 0, -BOUND, BOUND))


TRANSFORMERS = {
    "affine": "affine",
    "spline": spline_transformer(5, BOUND),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_maf_directions(name):
    """Density pass: triangular Jacobian in the order, log-det = sum log|diag|. Sampling (the
    sequential scan) inverts it exactly; IAF is the same pair of maps, swapped."""
    b = masked_autoregressive(TRANSFORMERS[name], hidden=(16,), order=ORDER, context_dim=2)
    b_iaf = inverse_autoregressive(TRANSFORMERS[name], hidden=(16,), order=ORDER, context_dim=2)
    xs = _events()
    ctxs = jax.random.normal(jax.random.key(12), (xs.shape[0], 2))
    params = _perturbed(b, xs[0], ctxs[0], scale=0.3)

    def one(params, x, ctx):
        z, ldj = b.inverse(params, x, ctx)
        jac = jax.jacfwd(lambda v: b.inverse(params, v, ctx)[0])(x)
        x_back, ldj_back = b.forward(params, z, ctx)
        iaf_pair = b_iaf.forward(params, x, ctx), b_iaf.inverse(params, z, ctx)
        return z, ldj, jac, x_back, ldj_back, iaf_pair

    run = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
    with jax.enable_x64(True):  # exactness of the inversion and of the Jacobian's structure
        to64 = lambda a: jnp.asarray(a, jnp.float64)
        out = run(jax.tree.map(to64, params), to64(xs), to64(ctxs))
        z, ldj, jac, x_back, ldj_back, ((iz, ildj), (ix, ildj_inv)) = jax.tree.map(np.asarray, out)
    xs_np = np.asarray(xs, np.float64)
    perm = np.array(ORDER)
    jac_ordered = jac[:, perm][:, :, perm]  # rows and columns in the autoregressive order
    assert np.all(np.triu(jac_ordered, 1) == 0)  # exactly: output i ignores later inputs
    inside = np.abs(xs_np) < BOUND if name == "spline" else np.ones(xs.shape, bool)
    lower = np.tril(np.ones((5, 5), bool), -1)[None] & inside[:, perm][:, :, None]
    assert np.all(jac_ordered[lower] != 0)  # and depends on every earlier one (off the tails)
    diag = np.diagonal(jac, axis1=1, axis2=2)
    np.testing.assert_allclose(ldj, np.sum(np.log(np.abs(diag)), -1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x_back, xs_np, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ldj_back, -ldj, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(iz, z)  # IAF forward = MAF inverse (the parallel pass)
    np.testing.assert_array_equal(ildj, ldj)
    np.testing.assert_array_equal(ix, x_back)  # IAF inverse = MAF forward (the scan)
    np.testing.assert_array_equal(ildj_inv, ldj_back)
    assert not np.allclose(z, xs_np, atol=0.05)
    if name == "spline":  # identity tails: dim 1 is beyond the bound in every event
        assert np.all(~inside[:, 1]) and np.mean(inside) > 0.6
        np.testing.assert_array_equal(z[~inside], xs_np[~inside])
        np.testing.assert_array_equal(diag[~inside], 1.0)
        assert np.all(np.abs(diag[inside] - 1.0) > 1e-6)  # the interior is transformed

    # float32 agrees with float64, and the sampling round trip holds there too.
    z32, ldj32, _, x32, _, _ = run(params, xs, ctxs)
    np.testing.assert_allclose(z32, z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ldj32, ldj, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x32, xs_np, rtol=1e-4, atol=1e-4)  # float32 rounding


def test_density_is_one_pass_and_sampling_is_a_scan():
    """MAF: inverse has no loop, forward is one scan whose traced size does not grow with D;
    IAF the reverse."""
    sizes = {}
    for dim in (3, 12):
        b = masked_autoregressive("affine", hidden=(8,))
        i = inverse_autoregressive("affine", hidden=(8,))
        x = jnp.zeros(dim)
        p = jax.eval_shape(b.init, jax.random.key(0), x)
        prims = lambda f, p=p, x=x: [e.primitive.name for e in jax.make_jaxpr(f)(p, x).eqns]
        fwd, inv = prims(b.forward), prims(b.inverse)
        assert fwd.count("scan") == 1 and "scan" not in inv
        assert "scan" not in prims(i.forward) and prims(i.inverse).count("scan") == 1
        sizes[dim] = (len(fwd), len(inv))
    assert sizes[3] == sizes[12]


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_maf_starts_at_identity(name):
    b = masked_autoregressive(TRANSFORMERS[name], hidden=(8,))
    x = _events(1)[0]
    params = jax.jit(b.init)(jax.random.key(0), x)
    for y, ldj in jax.jit(lambda p, x: (b.forward(p, x), b.inverse(p, x)))(params, x):
        np.testing.assert_allclose(y, x, atol=1e-6)
        np.testing.assert_allclose(ldj, 0.0, atol=1e-6)


def test_maf_errors():
    x = jnp.zeros(4)
    b = masked_autoregressive("affine", hidden=(8,))
    params = jax.jit(b.init)(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"expected one event of shape \(4,\), got shape \(3,\)"):
        b.forward(params, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"expected one event of shape \(4,\), got shape \(2, 4\)"):
        b.inverse(params, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"vector event of shape \(D,\), got shape \(2, 4\)"):
        b.init(jax.random.key(0), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="built without context"):
        b.inverse(params, x, jnp.ones(2))
    cond = masked_autoregressive("affine", hidden=(8,), context_dim=2)
    with pytest.raises(ValueError, match="without context"):
        cond.init(jax.random.key(0), x)
    cp = jax.jit(cond.init)(jax.random.key(0), x, jnp.ones(2))
    for fn in (cond.forward, cond.inverse):
        with pytest.raises(ValueError, match="called without context"):
            fn(cp, x)
        with pytest.raises(ValueError, match=r"context of size 2 .*got shape \(3,\)"):
            fn(cp, x, jnp.ones(3))
    # A context given at init only (context_dim=None) makes the layer conditional too.
    implicit = masked_autoregressive("affine", hidden=(8,))
    ip = jax.eval_shape(implicit.init, jax.random.key(0), x, jnp.ones(3))
    with pytest.raises(ValueError, match="called without context"):
        implicit.forward(ip, x)
    # The order fixes the event size.
    ordered = masked_autoregressive("affine", hidden=(8,), order=[1, 0, 2])
    with pytest.raises(ValueError, match=r"expected one event of shape \(3,\), got shape \(4,\)"):
        ordered.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="permutation"):
        masked_autoregressive(order=[0, 2])
    with pytest.raises(ValueError, match="event_dim=4"):
        masked_autoregressive(order=[0, 1, 2], event_dim=4)
    with pytest.raises(ValueError, match="context_dim"):
        masked_autoregressive(context_dim=0)
    with pytest.raises(ValueError, match="Unknown transformer"):
        inverse_autoregressive("affine?")


def test_maf_dim_one_and_additive():
    """D = 1: the MADE output is its bias (no context) and the layer is elementwise."""
    b = masked_autoregressive("additive", hidden=(4,))
    params = _perturbed(b, jnp.zeros(1))
    y, ldj = b.forward(params, jnp.array([0.5]))
    y2, _ = b.forward(params, jnp.array([-1.5]))
    np.testing.assert_allclose(y - 0.5, y2 + 1.5, atol=1e-6)  # a constant shift
    assert ldj == 0.0 and not np.allclose(y, 0.5)


# ------------------------------------------------------------------------- peer: flowjax


def _flowjax_affine() -> Transformer:
    """flowjax's ``Affine`` parameterization, as the *inverse* of our transformer: flowjax's
    MaskedAutoregressive transform (the one-pass direction) is our MAF's inverse.

    Raw ``(u_loc, u_scale)``: ``loc = u_loc``, ``scale = softplus(u_scale + softplus^{-1}(1))``.
    """
    offset = float(np.log(np.expm1(1.0)))

    def params(raw):
        return raw[..., 0], jax.nn.softplus(raw[..., 1] + offset)

    def forward(raw, z):  # sampling direction: x = (z - loc) / scale
        loc, scale = params(raw)
        return (z - loc) / scale, -jnp.log(scale)

    def inverse(raw, x):  # density direction: flowjax's transform, z = x * scale + loc
        loc, scale = params(raw)
        return x * scale + loc, jnp.log(scale)

    return Transformer(2, forward, inverse)


@pytest.mark.parametrize("cond_dim", [None, 2])
def test_matches_flowjax_masked_autoregressive_with_the_same_weights(cond_dim):
    """Same weights, same masks (degrees cycle as in flowjax when width >= #degrees), so the
    one-pass direction, the sequential inverse and both log-dets must agree to float32
    precision. Fails if the masks, the (D, K) output layout or the inversion differ."""
    pytest.importorskip("flowjax")
    paramax = pytest.importorskip("paramax")
    from flowjax.bijections import Affine, MaskedAutoregressive

    dim, width, depth = 4, 7, 2
    fj = MaskedAutoregressive(
        jax.random.key(5),
        transformer=Affine(),
        dim=dim,
        cond_dim=cond_dim,
        nn_width=width,
        nn_depth=depth,
        nn_activation=jax.nn.relu,
    )
    ours = masked_autoregressive(_flowjax_affine(), hidden=(width,) * depth, activation=jax.nn.relu)
    names = [f"hidden_{i}" for i in range(depth)] + ["output"]
    # flowjax stores each weight unmasked inside Parameterize(jnp.where, mask, weight, 0). We
    # copy the unmasked weights, so our masks must zero exactly the entries flowjax masks.
    wrapped = fj.masked_autoregressive_mlp.layers
    fj = paramax.unwrap(fj)
    params = {"params": {}}
    for n, layer, masked in zip(names, wrapped, fj.masked_autoregressive_mlp.layers, strict=True):
        raw = jnp.asarray(layer.weight.args[1])
        assert np.any(raw != masked.weight)  # some entries are masked, and nonzero here
        params["params"][n] = {"kernel": raw.T, "bias": jnp.asarray(layer.bias)}
    xs = jax.random.normal(jax.random.key(6), (6, dim)) * 1.5
    ctxs = None if cond_dim is None else jax.random.normal(jax.random.key(7), (6, cond_dim))
    axes = (0, None if ctxs is None else 0)
    ours_params = jax.eval_shape(
        ours.init, jax.random.key(0), xs[0], None if ctxs is None else ctxs[0]
    )
    assert jax.tree.map(jnp.shape, ours_params) == jax.tree.map(jnp.shape, params)

    @jax.jit
    def both(params, xs, ctxs):
        z_fj, ldj_fj = jax.vmap(fj.transform_and_log_det, in_axes=axes)(xs, ctxs)
        x_fj, ldj_inv_fj = jax.vmap(fj.inverse_and_log_det, in_axes=axes)(z_fj, ctxs)
        z, ldj = jax.vmap(lambda x, c: ours.inverse(params, x, c), in_axes=axes)(xs, ctxs)
        x, ldj_inv = jax.vmap(lambda v, c: ours.forward(params, v, c), in_axes=axes)(z_fj, ctxs)
        return z_fj, ldj_fj, x_fj, ldj_inv_fj, z, ldj, x, ldj_inv

    z_fj, ldj_fj, x_fj, ldj_inv_fj, z, ldj, x, ldj_inv = both(params, xs, ctxs)
    assert not np.allclose(z_fj, xs, atol=0.1)  # the random weights make it non-trivial
    np.testing.assert_allclose(z, z_fj, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ldj, ldj_fj, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x, x_fj, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ldj_inv, ldj_inv_fj, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x, xs, rtol=1e-4, atol=1e-4)


def test_exported_names():
    assert flows.masked_autoregressive is masked_autoregressive
    assert flows.inverse_autoregressive is inverse_autoregressive
