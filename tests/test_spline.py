"""Tests for the rational-quadratic spline (gen/flows/rational_quadratic.py).

The reference below is written independently of the code under test: plain float64 numpy, a
per-element loop over bins, the derivative by the quotient rule (not the paper's closed form) and
the inverse by bisection on the forward map (not the quadratic formula).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.flows.rational_quadratic import (
    Transformer,
    rational_quadratic_spline,
    spline,
    spline_transformer,
)

K = 8
B = 3.0
MIN = 1e-3  # the defaults of min_bin_width, min_bin_height and min_derivative


# ----------------------------------------------------------------------------- numpy reference


def _ref_knots(u: np.ndarray, bound: float) -> np.ndarray:
    p = np.exp(u - u.max())
    p = p / p.sum()
    sizes = 2 * bound * (MIN + (1 - len(u) * MIN) * p)
    knots = [-bound]
    for size in sizes:
        knots.append(knots[-1] + size)
    knots[-1] = bound
    return np.array(knots)


def _ref_derivatives(u: np.ndarray) -> np.ndarray:
    # Zero raw parameters must give derivative 1: m + softplus(0 + c) = 1.
    c = math.log(math.expm1(1 - MIN))
    return np.array([1.0] + [MIN + math.log1p(math.exp(v + c)) for v in u] + [1.0])


def _ref_params(raw: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = (raw.shape[-1] + 1) // 3
    return (
        _ref_knots(raw[:k], bound),
        _ref_knots(raw[k : 2 * k], bound),
        _ref_derivatives(raw[2 * k :]),
    )


def _ref_forward_scalar(x: float, xk, yk, d) -> tuple[float, float]:
    if x < xk[0] or x > xk[-1]:
        return x, 0.0
    nbins = len(xk) - 1
    k = 0
    while k < nbins - 1 and x > xk[k + 1]:
        k += 1
    w, h = xk[k + 1] - xk[k], yk[k + 1] - yk[k]
    s = h / w
    t = (x - xk[k]) / w
    curv = d[k] + d[k + 1] - 2 * s
    num = s * t * t + d[k] * t * (1 - t)
    den = s + curv * t * (1 - t)
    dnum = 2 * s * t + d[k] * (1 - 2 * t)
    dden = curv * (1 - 2 * t)
    dydx = (h / w) * (dnum * den - num * dden) / den**2
    return yk[k] + h * num / den, math.log(dydx)


def _ref_inverse_scalar(y: float, xk, yk, d) -> tuple[float, float]:
    if y < yk[0] or y > yk[-1]:
        return y, 0.0
    lo, hi = xk[0], xk[-1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _ref_forward_scalar(mid, xk, yk, d)[0] < y:
            lo = mid
        else:
            hi = mid
    x = 0.5 * (lo + hi)
    return x, -_ref_forward_scalar(x, xk, yk, d)[1]


def _reference(raw: np.ndarray, x: np.ndarray, inverse: bool, bound: float = B):
    raw, x = np.asarray(raw, np.float64), np.asarray(x, np.float64)
    fn = _ref_inverse_scalar if inverse else _ref_forward_scalar
    out = [fn(float(xi), *_ref_params(r, bound)) for r, xi in zip(raw, x, strict=True)]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


# ----------------------------------------------------------------------------- test inputs


def _case(seed: int, n: int = 160, scale: float = 2.0, inverse: bool = False, bound: float = B):
    """Random raw params ``(n, 3K-1)`` and inputs ``(n,)`` covering every branch.

    Rows cycle through: inside the bound, both tails, exactly +-B, just inside +-B, exactly at a
    (reference) knot, a hair either side of a knot, |x| = 1e4 and 0. For ``inverse`` the knots
    are those of the y axis.
    """
    rng = np.random.default_rng(seed)
    raw = scale * rng.standard_normal((n, 3 * K - 1))
    x = rng.uniform(-bound, bound, n)
    for i in range(n):
        xk, yk, _ = _ref_params(raw[i], bound)
        knots = yk if inverse else xk
        j = rng.integers(1, K)  # an interior knot
        kind = i % 12
        if kind == 1:
            x[i] = rng.uniform(bound, 2 * bound)
        elif kind == 2:
            x[i] = -rng.uniform(bound, 2 * bound)
        elif kind == 3:
            x[i] = bound
        elif kind == 4:
            x[i] = -bound
        elif kind == 5:
            x[i] = bound * (1 - 1e-6) * rng.choice([-1, 1])
        elif kind == 6:
            x[i] = knots[j]
        elif kind == 7:
            x[i] = knots[j] + 1e-7 * rng.choice([-1, 1])
        elif kind == 8:
            x[i] = 1e4 * rng.choice([-1, 1])
        elif kind == 9:
            x[i] = 0.0
    return raw, x


def _knot_points(raw: np.ndarray, inverse: bool) -> np.ndarray:
    """All K+1 knots of every row, on the x axis (or the y axis for ``inverse``)."""
    return np.stack([_ref_params(r, B)[1 if inverse else 0] for r in raw])


T = spline_transformer(K, B)
FWD, INV = jax.jit(T.forward), jax.jit(T.inverse)  # one compile per dtype: keeps the tests fast


# ----------------------------------------------------------------------------- core tests


def test_transformer_layout():
    assert isinstance(T, Transformer)
    assert T.num_params == 3 * K - 1
    raw, x = _case(0, n=12)
    w, h, d = raw[:, :K], raw[:, K : 2 * K], raw[:, 2 * K :]
    y1, l1 = FWD(jnp.asarray(raw, jnp.float32), jnp.asarray(x, jnp.float32))
    core = jax.jit(functools.partial(rational_quadratic_spline, bound=B, inverse=False))
    y2, l2 = core(jnp.asarray(x, jnp.float32), w, h, d)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(l1, l2)


@pytest.mark.parametrize("inverse", [False, True])
def test_matches_numpy_reference_float64(inverse):
    raw, x = _case(1, inverse=inverse)
    y_ref, l_ref = _reference(raw, x, inverse)
    with jax.enable_x64(True):
        fn = INV if inverse else FWD
        y, ldj = fn(jnp.asarray(raw), jnp.asarray(x))
        assert y.dtype == jnp.float64
        y, ldj = np.asarray(y), np.asarray(ldj)
    if inverse:
        # x = f^-1(y) is ill-conditioned where f is flat (f' down to ~1e-6 with scale-2 params):
        # allow x-error = y-error / f'(x).
        tol = 1e-11 * (1 + np.exp(l_ref))
    else:
        tol = 1e-11
    assert np.all(np.abs(y - y_ref) <= tol), np.max(np.abs(y - y_ref) / tol)
    np.testing.assert_allclose(ldj, l_ref, rtol=0, atol=1e-7 if inverse else 1e-9)


@pytest.mark.parametrize("inverse", [False, True])
def test_matches_numpy_reference_float32(inverse):
    raw, x = _case(2, scale=1.0, inverse=inverse)
    y_ref, l_ref = _reference(raw, x, inverse)
    fn = INV if inverse else FWD
    y, ldj = fn(jnp.asarray(raw, jnp.float32), jnp.asarray(x, jnp.float32))
    assert y.dtype == jnp.float32
    # The float32 input itself is rounded; compare against the reference at the rounded input.
    y_ref, l_ref = _reference(raw, np.asarray(x, np.float32), inverse)
    scale = np.exp(l_ref) if inverse else 1.0  # dx/dy amplifies y rounding in the inverse
    assert np.all(
        np.abs(np.asarray(y) - y_ref) <= 2e-6 * (1 + scale) * np.maximum(1, np.abs(y_ref))
    )
    np.testing.assert_allclose(ldj, l_ref, rtol=0, atol=2e-4)


def test_round_trip_float64():
    raw, x = _case(3)
    with jax.enable_x64(True):
        r, xx = jnp.asarray(raw), jnp.asarray(x)
        y, ldj_f = FWD(r, xx)
        x2, ldj_i = INV(r, y)
        np.testing.assert_allclose(x2, xx, rtol=0, atol=1e-9)
        np.testing.assert_allclose(ldj_i, -ldj_f, rtol=0, atol=1e-8)
        raw_i, y0 = _case(4, inverse=True)
        r, yy = jnp.asarray(raw_i), jnp.asarray(y0)
        x3, ldj_i = INV(r, yy)
        y3, ldj_f = FWD(r, x3)
        np.testing.assert_allclose(y3, yy, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ldj_f, -ldj_i, rtol=0, atol=1e-8)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_round_trip_float32(scale):
    # In float32 a round trip is only as good as the conditioning allows: rounding of x or y
    # (relative ~1e-7) moves the other side by the slope, and f' spans ~1e-6..1e3 for unequal
    # bins. So both errors are measured in y-space against eps (|y| + f'(x) |x|). The tight
    # x-space checks are in float64 (test_round_trip_float64).
    def y_tol(x, y, ldj):
        x, y, slope = np.asarray(x), np.asarray(y), np.exp(np.asarray(ldj))
        return 4e-6 * (np.maximum(1, np.abs(y)) + slope * np.maximum(1, np.abs(x)))

    raw, x = _case(5 + int(scale), scale=scale)
    r, xx = jnp.asarray(raw, jnp.float32), jnp.asarray(x, jnp.float32)
    y, ldj_f = FWD(r, xx)
    x2, _ = INV(r, y)
    err_in_y = np.abs(np.asarray(x2) - np.asarray(xx)) * np.exp(np.asarray(ldj_f))
    assert np.all(err_in_y <= y_tol(xx, y, ldj_f)), np.max(err_in_y / y_tol(xx, y, ldj_f))

    raw, y0 = _case(7 + int(scale), scale=scale, inverse=True)
    r, yy = jnp.asarray(raw, jnp.float32), jnp.asarray(y0, jnp.float32)
    x3, ldj_i = INV(r, yy)
    y3, ldj_f = FWD(r, x3)
    err = np.abs(np.asarray(y3) - np.asarray(yy))
    assert np.all(err <= y_tol(x3, yy, ldj_f)), np.max(err / y_tol(x3, yy, ldj_f))
    # The log-dets agree at the same point (ldj_f is evaluated at the returned x3). Recomputing
    # the bin coordinate from x3 costs eps |x| / w with bins down to w = 6e-3 wide, hence the
    # looser float32 tolerance for very unequal bins; float64 checks this tightly.
    np.testing.assert_allclose(ldj_f, -ldj_i, rtol=0, atol=1e-4 if scale == 1.0 else 5e-3)
    if scale == 1.0:  # moderate bins: well conditioned, a plain x-space check holds too
        np.testing.assert_allclose(x2, xx, rtol=0, atol=1e-4)


@pytest.mark.parametrize("inverse", [False, True])
def test_log_det_matches_autodiff_float64(inverse):
    raw, x = _case(8, n=96, inverse=inverse)
    raw = raw[np.abs(x) < 1e3]  # |x| = 1e4 is covered by the gradient tests
    x = x[np.abs(x) < 1e3]
    with jax.enable_x64(True):
        fn = INV if inverse else FWD
        r, xx = jnp.asarray(raw), jnp.asarray(x)
        dydx = jax.jit(jax.vmap(jax.grad(lambda p, v: fn(p, v)[0], argnums=1)))(r, xx)
        _, ldj = fn(r, xx)
        assert np.all(np.asarray(dydx) > 0)
        # Includes points exactly at +-B and at knots: the derivative is continuous there.
        np.testing.assert_allclose(ldj, np.log(dydx), rtol=0, atol=1e-9)


# Each direction with one bin count by default (forward with K bins, inverse with 2), the other
# pairs and the single bin in the slow run: one case takes about 5 s to compile.
@pytest.mark.parametrize("num_bins,inverse", [
    (K, False), (2, True),
    *(pytest.param(n, inv, marks=pytest.mark.slow) for n, inv in [(1, False), (1, True),
                                                                  (2, False), (K, True)])])
def test_custom_derivatives_match_plain_autodiff_float64(num_bins, inverse):
    # The spline's custom JVP builds its derivatives from closed-form coefficients (the softmax,
    # the sums over bins and the bin selection are not differentiated). The reference here is
    # plain autodiff through the same forward computation, in both modes, w.r.t. x and all raw
    # parameters, of both outputs, on inputs reaching every branch (tails, +-B, knots).
    from gen.flows import rational_quadratic as S

    rng = np.random.default_rng(40 + num_bins)
    n, p = 96, 3 * num_bins - 1
    raw = 2.0 * rng.standard_normal((n, p))
    x = rng.uniform(-1.3 * B, 1.3 * B, n)
    x[:6] = [B, -B, 1e4, -1e4, 0.0, np.nextafter(B, 0)]
    cfg = S._config(num_bins, B, inverse, MIN, MIN, MIN, "test")

    def plain(v, r):  # one scalar, plain autodiff
        v0, rows = v[None], r[:, None]
        out, ldj = S._rq_local(v0, *S._bin(v0, rows, cfg).local, bound=B, inverse=inverse)
        return jnp.stack([out[0], ldj[0]])

    def custom(v, r):
        return jnp.stack(S._apply(v, r, cfg))

    with jax.enable_x64(True):
        v, r = jnp.asarray(x), jnp.asarray(raw)
        np.testing.assert_allclose(jax.jit(jax.vmap(custom))(v, r), jax.jit(jax.vmap(plain))(v, r),
                                   atol=1e-12)
        for jac in (jax.jacrev, jax.jacfwd):
            want = jax.jit(jax.vmap(jac(plain, argnums=(0, 1))))(v, r)
            got = jax.jit(jax.vmap(jac(custom, argnums=(0, 1))))(v, r)
            for g, w in zip(got, want, strict=True):
                assert np.all(np.isfinite(np.asarray(g)))
                np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)
        # The same through a batch (the batching rule folds the batch into the scalars).
        grad = jax.jit(jax.grad(lambda r, v: jnp.sum(jnp.sin(jnp.stack(S._apply(v, r, cfg))))))(
            r, v)
        want = jax.jit(jax.vmap(jax.grad(lambda r, v: jnp.sum(jnp.sin(plain(v, r))))))(r, v)
        np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-9)


def test_c1_at_the_bound_and_knots():
    # The slope is continuous: one-sided differences of log f' vanish linearly in the distance
    # (x1000 smaller at 1e-9 than at 1e-6); a jump in f' would leave them constant.
    raw, _ = _case(9, n=16)
    with jax.enable_x64(True):
        r = jnp.asarray(raw)
        for edge in (-B, B):  # slope 1 approaching +-B from inside, as in the identity tails
            _, far = FWD(r, jnp.full((16,), edge - np.sign(edge) * 1e-6))
            _, near = FWD(r, jnp.full((16,), edge - np.sign(edge) * 1e-9))
            assert np.all(np.abs(far) > 0)  # the slope does change inside
            assert np.all(np.abs(near) <= 2e-3 * np.abs(far) + 1e-10)
        knots = _knot_points(raw, inverse=False)[:, 1:-1]
        for j in range(K - 1):
            kn = jnp.asarray(knots[:, j])
            jumps = []
            for delta in (1e-6, 1e-9):
                _, left = FWD(r, kn - delta)
                _, right = FWD(r, kn + delta)
                jumps.append(np.abs(np.asarray(left - right)))
            assert np.all(jumps[1] <= 2e-3 * jumps[0] + 1e-9)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("inverse", [False, True])
def test_gradients_finite_everywhere(dtype, inverse):
    raw, x = _case(10, n=96, inverse=inverse)
    x[:10] = [B, -B, 1e4, -1e4, 1e30, -1e30, B + 1e-6, -B - 1e-6, np.inf, -np.inf]
    with jax.enable_x64(dtype == jnp.float64):
        r, xx = jnp.asarray(raw, dtype), jnp.asarray(x, dtype)
        fn = INV if inverse else FWD

        # Reverse-mode grads of y and of ldj, per element, w.r.t. all params and x.
        per = jax.jit(jax.vmap(jax.jacrev(lambda p, v: jnp.stack(fn(p, v)), argnums=(0, 1))))(r, xx)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in per)
        # In the tails: dy/dx = 1, dldj/dx = 0, and no gradient reaches the parameters.
        tail = np.abs(x) > B
        np.testing.assert_array_equal(
            np.asarray(per[1])[tail], np.tile([1.0, 0.0], (tail.sum(), 1))
        )
        np.testing.assert_array_equal(np.asarray(per[0])[tail], 0.0)


@pytest.mark.parametrize("inverse", [False, True])
def test_identity_outside_bound(inverse):
    raw, _ = _case(11, n=64)
    rng = np.random.default_rng(11)
    x = rng.uniform(B, 50.0, 64) * rng.choice([-1, 1], 64)
    x[:6] = [
        np.nextafter(np.float32(B), np.float32(10)),
        -np.nextafter(np.float32(B), 10),
        1e4,
        -1e4,
        np.inf,
        -np.inf,
    ]
    xx = jnp.asarray(x, jnp.float32)
    y, ldj = (INV if inverse else FWD)(jnp.asarray(raw, jnp.float32), xx)
    np.testing.assert_array_equal(y, xx)
    np.testing.assert_array_equal(ldj, 0.0)


@pytest.mark.parametrize("inverse", [False, True])
def test_bound_maps_to_bound(inverse):
    raw, _ = _case(12, n=32)
    fn = INV if inverse else FWD
    r = jnp.asarray(raw, jnp.float32)
    for edge in (-B, B):
        y, _ = fn(r, jnp.full((32,), edge, jnp.float32))
        np.testing.assert_allclose(y, edge, rtol=0, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_knots_interpolate(inverse):
    # f(x_k) = y_k at every knot (and f^-1(y_k) = x_k), with the knots from the reference.
    raw, _ = _case(13, n=24)
    xk = _knot_points(raw, inverse=False)
    yk = _knot_points(raw, inverse=True)
    src, dst = (yk, xk) if inverse else (xk, yk)
    with jax.enable_x64(True):
        fn = INV if inverse else FWD
        for j in range(K + 1):
            out, _ = fn(jnp.asarray(raw), jnp.asarray(src[:, j]))
            np.testing.assert_allclose(out, dst[:, j], rtol=0, atol=1e-9 if not inverse else 1e-6)


def test_monotone():
    rng = np.random.default_rng(14)
    raw = jnp.asarray(2.0 * rng.standard_normal((6, 3 * K - 1)))
    grid = np.linspace(-1.5 * B, 1.5 * B, 4001)
    with jax.enable_x64(True):
        ys = jax.vmap(lambda r: FWD(jnp.broadcast_to(r, (grid.size, r.size)), grid)[0])(raw)
        xs = jax.vmap(lambda r: INV(jnp.broadcast_to(r, (grid.size, r.size)), grid)[0])(raw)
        assert np.all(np.diff(np.asarray(ys), axis=1) > 0)
        assert np.all(np.diff(np.asarray(xs), axis=1) > 0)
    ys32, _ = jax.vmap(lambda r: FWD(jnp.broadcast_to(r, (grid.size, r.size)), grid))(
        jnp.asarray(raw, jnp.float32)
    )
    assert np.all(np.diff(np.asarray(ys32), axis=1) >= 0)


def test_zero_params_is_identity():
    x = jnp.linspace(-2 * B, 2 * B, 1001)
    raw = jnp.zeros((x.size, T.num_params))
    for fn in (FWD, INV):
        y, ldj = fn(raw, x)
        np.testing.assert_allclose(y, x, rtol=0, atol=2e-6)
        np.testing.assert_allclose(ldj, 0.0, rtol=0, atol=2e-6)


def test_nonzero_params_are_not_identity():
    # Guards the test above against a spline that ignores its parameters.
    raw, x = _case(15, n=64)
    y, _ = FWD(jnp.asarray(raw, jnp.float32), jnp.asarray(x, jnp.float32))
    inside = np.abs(x) < B * 0.99
    assert np.max(np.abs(np.asarray(y) - x)[inside]) > 0.1


def test_min_sizes_respected():
    # Extreme logits: bins still at least min_bin_width * 2B wide and the slope stays positive.
    raw = np.zeros((1, 3 * K - 1))
    raw[0, 0] = 80.0
    raw[0, K + 1] = -80.0
    raw[0, 2 * K :] = -80.0
    x = np.linspace(-B, B, 257)
    with jax.enable_x64(True):
        r = jnp.broadcast_to(jnp.asarray(raw), (x.size, raw.shape[1]))
        y, ldj = FWD(r, jnp.asarray(x))
        assert np.all(np.isfinite(np.asarray(ldj)))
        x2, _ = INV(r, y)
        np.testing.assert_allclose(x2, x, atol=1e-6)
    _, l_ref = _reference(np.broadcast_to(raw, (x.size, raw.shape[1])), x, False)
    np.testing.assert_allclose(ldj, l_ref, atol=1e-8)


def test_broadcast_vmap_and_jit():
    rng = np.random.default_rng(16)
    raw = jnp.asarray(1.5 * rng.standard_normal((5, 3, T.num_params)), jnp.float32)
    x = jnp.asarray(rng.uniform(-1.2 * B, 1.2 * B, (5, 3)), jnp.float32)
    y, ldj = T.forward(raw, x)  # eager, once
    assert y.shape == ldj.shape == (5, 3)
    y_v, ldj_v = jax.jit(jax.vmap(jax.vmap(T.forward)))(raw, x)
    y_j, ldj_j = jax.jit(T.forward)(raw, x)
    for a, b in ((y, y_v), (ldj, ldj_v), (y, y_j), (ldj, ldj_j)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    x_j, _ = jax.jit(jax.vmap(T.inverse))(raw, y)
    # In y-space, as in test_round_trip_float32: f' is down to ~3e-4 here, and x = f^-1(y)
    # moves by the rounding of y divided by f'.
    err_in_y = np.abs(np.asarray(x_j) - np.asarray(x)) * np.exp(np.asarray(ldj))
    assert np.all(err_in_y <= 4e-6 * (1 + np.abs(np.asarray(y)))), err_in_y.max()
    # One spline shared by a batch: params broadcast against x.
    y_s, _ = FWD(raw[0, 0], x)
    y_each, _ = FWD(jnp.broadcast_to(raw[0, 0], raw.shape), x)
    np.testing.assert_allclose(y_s, y_each, rtol=1e-6, atol=1e-6)


def test_argument_validation():
    w, d = jnp.zeros((3, K)), jnp.zeros((3, K - 1))
    x = jnp.zeros(3)
    with pytest.raises(ValueError, match="interior derivatives"):
        rational_quadratic_spline(x, w, w, jnp.zeros((3, K)), bound=B, inverse=False)
    with pytest.raises(ValueError, match="min_bin_width"):
        rational_quadratic_spline(x, w, w, d, bound=B, inverse=False, min_bin_width=1 / K)
    with pytest.raises(ValueError, match="min_derivative"):
        rational_quadratic_spline(x, w, w, d, bound=B, inverse=False, min_derivative=1.0)
    with pytest.raises(ValueError, match="last axis"):
        T.forward(jnp.zeros((3, 3 * K)), x)


# ----------------------------------------------------------------------------- the Bijector


def test_bijector_init_is_identity():
    b = spline(K, B)
    x = jnp.asarray(np.random.default_rng(17).uniform(-4, 4, (2, 3)), jnp.float32)
    params = b.init(jax.random.key(0), x)
    assert params.shape == (2, 3, 3 * K - 1)
    y, ldj = jax.jit(b.forward)(params, x)
    assert ldj.shape == ()
    np.testing.assert_allclose(y, x, atol=2e-6)
    np.testing.assert_allclose(ldj, 0.0, atol=1e-5)


def test_bijector_log_det_matches_jacobian_float64():
    b = spline(K, B)
    rng = np.random.default_rng(18)
    with jax.enable_x64(True):
        x = jnp.asarray([-4.0, -B, -1.1, 0.3, 2.2, B, 5.0])
        params = b.init(jax.random.key(0), x)
        params = params + jnp.asarray(1.5 * rng.standard_normal(params.shape))
        y, ldj = b.forward(params, x)
        jac = jax.jit(jax.jacfwd(lambda v: b.forward(params, v)[0]))(x)
        sign, logdet = jnp.linalg.slogdet(jac)
        assert sign == 1
        np.testing.assert_allclose(ldj, logdet, atol=1e-9)
        x2, ldj_inv = b.inverse(params, y)
        np.testing.assert_allclose(x2, x, atol=1e-9)
        np.testing.assert_allclose(ldj_inv, -ldj, atol=1e-8)
        jac_inv = jax.jit(jax.jacfwd(lambda v: b.inverse(params, v)[0]))(y)
        np.testing.assert_allclose(ldj_inv, jnp.linalg.slogdet(jac_inv)[1], atol=1e-8)


def test_bijector_batched_and_shape_errors():
    b = spline(K, B)
    rng = np.random.default_rng(19)
    x = jnp.asarray(rng.uniform(-4, 4, (16, 3)), jnp.float32)
    params = b.init(jax.random.key(0), x[0]) + jnp.asarray(rng.standard_normal((3, 3 * K - 1)))
    y, ldj = jax.jit(jax.vmap(b.forward, in_axes=(None, 0)))(params, x)
    assert y.shape == (16, 3) and ldj.shape == (16,)
    _, ldj_elem = FWD(jnp.broadcast_to(params, (16, *params.shape)), x)
    np.testing.assert_allclose(ldj, ldj_elem.sum(-1), rtol=1e-5, atol=1e-5)
    x2, ldj_i = jax.jit(jax.vmap(b.inverse, in_axes=(None, 0)))(params, y)
    np.testing.assert_allclose(x2, x, atol=5e-5)
    np.testing.assert_allclose(ldj_i, -ldj, atol=1e-4)
    y_ctx, _ = jax.jit(b.forward)(params, x[0], jnp.ones(5))  # context is accepted, ignored
    np.testing.assert_array_equal(y_ctx, y[0])
    with pytest.raises(ValueError, match="shape"):
        b.forward(params, x)  # a batch, not one event
    with pytest.raises(ValueError, match="shape"):
        b.inverse(params, x[0, :2])
    with pytest.raises(ValueError, match="last axis"):
        b.forward(params[..., :-1], x[0])
