"""Rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows", arXiv:1906.04032).

A monotone spline of ``K`` rational-quadratic bins on ``[-B, B]`` with identity tails outside::

    y, ldj = rational_quadratic_spline(x, w, h, d, bound=3.0, inverse=False)  # elementwise
    t = spline_transformer(num_bins=8, bound=3.0)    # raw (..., 3K-1) -> elementwise transform
    b = spline(num_bins=8, bound=3.0)                # an elementwise Bijector with its own params

Parameterization (the convention of nflows for bins, of distrax for derivatives):

- widths ``w_k = 2B (m_w + (1 - K m_w) softmax(uw)_k)``, heights likewise with ``m_h``, so every
  bin is at least ``2B m`` wide/high (``m`` is a fraction of the interval, as in nflows).
- interior derivatives ``d_k = m_d + softplus(ud_k + log(expm1(1 - m_d)))``, ``k = 1..K-1``; the
  boundary derivatives are ``d_0 = d_K = 1`` so the spline meets the identity tails C1-continuously.
  The offset (as in distrax; nflows has none) makes ``ud = 0`` give ``d = 1`` exactly.
- **All-zero raw parameters give the exact identity**: uniform bins of width = height = 2B/K, so
  every bin slope is ``s = 1`` and every derivative is 1, and the rational quadratic reduces to
  ``y = x`` with log-det 0. (With nflows' convention zeros give interior derivatives
  ``m_d + log 2 ~ 0.694``, not the identity; nflows' raw derivatives equal ours plus
  ``log(expm1(1 - m_d))``.)

Inside bin ``k`` with ``xi = (x - x_k) / w_k``, ``s = h_k / w_k``::

    y = y_k + h_k (s xi^2 + d_k xi (1 - xi)) / (s + (d_{k+1} + d_k - 2 s) xi (1 - xi))
    log dy/dx = log(s^2 (d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2))
                - 2 log(s + (d_{k+1} + d_k - 2 s) xi (1 - xi))

Both logs are of positive numbers for ``xi`` in ``[0, 1]``: the denominator is at least ``s / 2``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from gen.flows.bijector import Bijector, check_event
from gen.flows.transformers import Transformer

Array = jax.Array

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def _clip_keep_grad(x: Array, lo: Array | float, hi: Array | float) -> Array:
    """``clip(x, lo, hi)`` whose derivative is exactly 1 on the closed interval, 0 outside.

    ``jnp.clip`` gives derivative 1/2 at ``x == lo`` or ``x == hi`` (a tie in min/max), which would
    halve ``dy/dx`` at the bound. Nested ``where`` passes the gradient through there.
    """
    return jnp.where(x < lo, lo, jnp.where(x > hi, hi, x))


def _clip_straight_through(x: Array, lo: float, hi: float) -> Array:
    """``clip(x, lo, hi)`` in value with the gradient of ``x``.

    Used for the bin coordinate ``xi``, which leaves ``[0, 1]`` only by rounding (at the end of a
    bin): a hard clip there would zero the derivative (e.g. ``dx/dy`` at ``y = B``).
    """
    stop = jax.lax.stop_gradient
    return stop(jnp.clip(x, lo, hi)) + (x - stop(x))  # exact value, even for huge |x|


# ----------------------------------------------------------------------------- the spline core
#
# The core works on the raw parameters of N scalars as a (3K - 1, N) array: bins on the major
# axis, scalars on the minor one, so that sums over bins and per-bin selections are vectorized
# over N. Under ``vmap`` a custom batching rule folds the mapped axis into N, so the layout holds
# whatever the caller's batch shape. (The batch-major (N, K) layout that vmap gives a per-scalar
# function leaves XLA's CPU backend with K-wide minor axes and dozens of small kernels per call.)
#
# Derivatives come from a custom JVP with closed-form coefficients. With ``p_i`` the softmax of the
# raw widths ``u``, ``P_j = sum_{i<j} p_i`` and ``c = 1 - K m_w``, the knots are
# ``x_j = -B + 2B (m_w j + c P_j)``, so ``dx_j / du_i = 2Bc p_i ([i < j] - P_j)`` and
#
#     dy / du_i = 2Bc p_i (g_k ([i < k] - P_k) + g_k1 ([i <= k] - P_{k+1})),
#
# with ``g_k, g_k1`` the partial derivatives of the bin's rational quadratic in its knots
# ``x_k, x_{k+1}`` (likewise for the heights, and ``sigmoid(u + offset)`` times the partials in
# the knot derivatives for their raw parameters). The partials of one bin come from autodiff of
# its closed form; the softmax, the sums over bins and the bin selection are never differentiated.


def _transpose(a: Array) -> Array:
    """``a.T`` of a 2-D array, materialized in memory.

    On CPU this is a product with the identity (exact: each output is one input times 1.0), since
    XLA otherwise folds a transpose into every consumer as a strided read. A non-finite raw
    parameter then makes all parameters of its scalar NaN, where it would have made its output NaN.
    """

    def via_dot(a: Array) -> Array:  # contracts the shorter axis against the identity
        m, n = a.shape
        highest = jax.lax.Precision.HIGHEST
        if m <= n:
            eye = jnp.eye(m, dtype=a.dtype)
            return jax.lax.dot_general(a, eye, (((0,), (0,)), ((), ())), precision=highest)
        eye = jnp.eye(n, dtype=a.dtype)
        return jax.lax.dot_general(eye, a, (((1,), (1,)), ((), ())), precision=highest)

    return jax.lax.platform_dependent(a, cpu=via_dot, default=lambda a: a.T)


class _Config(NamedTuple):
    num_bins: int
    bound: float
    inverse: bool
    min_bin_width: float
    min_bin_height: float
    min_derivative: float


class _Knots(NamedTuple):
    probs: Array  # (K, N): p_i
    cum: Array  # (K + 1, N): P_j = sum_{i<j} p_i (P_0 = 0 and P_K = 1 exactly)
    knots: Array  # (K + 1, N): x_j (x_0 = -B and x_K = B exactly)


def _knots(u: Array, bound: float, min_size: float) -> _Knots:
    """Knots from raw sizes ``u`` of shape ``(K, N)``: ``x_j = -B + 2B (m j + (1 - K m) P_j)``.

    Each knot is computed from its nearer end (``x_j = B - 2B (m (K - j) + c Q_j)`` above the
    middle), so that rounding grows with the distance from -B or B, not from -B only. The sums
    over bins are products with 0/1 matrices (one small matmul, not a scan).
    """
    k = u.shape[0]
    e = jnp.exp(u - jnp.max(u, axis=0))
    probs = e * (1.0 / jnp.sum(e, axis=0))
    rows, cols = np.arange(k + 1)[:, None], np.arange(k)[None, :]
    upper = 2 * rows > k
    # Row j sums p_i over i < j (P_j), or over i >= j (Q_j = 1 - P_j) above the middle.
    ones = np.where(upper, cols >= rows, cols < rows)
    sums = jnp.dot(jnp.asarray(ones, probs.dtype), probs, precision=jax.lax.Precision.HIGHEST)
    j = jnp.arange(k + 1, dtype=probs.dtype)[:, None]
    c, scale = 1.0 - min_size * k, 2.0 * bound
    knots = jnp.where(upper, bound - scale * (min_size * (k - j) + c * sums),
                      scale * (min_size * j + c * sums) - bound)
    cum = jnp.where(upper, 1.0 - sums, sums)
    ends = (np.arange(k + 1) % k == 0)[:, None]  # rows 0 and K: exact
    knots = jnp.where(ends, jnp.where(j == 0, -bound, bound), knots)
    cum = jnp.where(ends, jnp.where(j == 0, 0.0, 1.0), cum)
    return _Knots(probs, cum, knots)


class _Bin(NamedTuple):
    idx: Array  # (N,) int32
    widths: _Knots
    heights: _Knots
    local: tuple[Array, ...]  # x_k, x_{k+1}, y_k, y_{k+1}, d_k, d_{k+1}
    dsig: tuple[Array, Array]  # d d_k / d u, d d_{k+1} / d u (0 at the fixed end derivatives)


def _bin(v0: Array, raw: Array, cfg: _Config) -> _Bin:
    """The bin holding each scalar, with its knots and knot derivatives; ``raw`` is ``(P, N)``."""
    k, bound = cfg.num_bins, cfg.bound
    xs = _knots(raw[:k], bound, cfg.min_bin_width)
    ys = _knots(raw[k : 2 * k], bound, cfg.min_bin_height)
    ref = (ys if cfg.inverse else xs).knots
    v = _clip_keep_grad(v0, -bound, bound)
    # A reduction, so that every consumer sees the same bin (XLA may otherwise recompute the
    # knots in several kernels, rounded differently).
    idx = jnp.sum(v >= ref[1:k], axis=0, dtype=jnp.int32)
    # The raw derivative of the bin's left knot (d_k uses ud[k-1]) and of its right one (ud[k]);
    # the zero rows stand for the fixed d_0 = d_K = 1.
    zero = jnp.zeros_like(raw[:1])
    ud_left = jnp.concatenate([zero, raw[2 * k :]])
    ud_right = jnp.concatenate([raw[2 * k :], zero])
    table = jnp.stack([xs.knots[:-1], xs.knots[1:], ys.knots[:-1], ys.knots[1:], ud_left,
                       ud_right])
    onehot = jnp.arange(k)[:, None] == idx
    x_k, x_k1, y_k, y_k1, u_k, u_k1 = jnp.sum(jnp.where(onehot, table, 0.0), axis=1)
    offset = math.log(math.expm1(1.0 - cfg.min_derivative))
    first, last = idx == 0, idx == k - 1
    d_k = jnp.where(first, 1.0, cfg.min_derivative + jax.nn.softplus(u_k + offset))
    d_k1 = jnp.where(last, 1.0, cfg.min_derivative + jax.nn.softplus(u_k1 + offset))
    dsig = (jnp.where(first, 0.0, jax.nn.sigmoid(u_k + offset)),
            jnp.where(last, 0.0, jax.nn.sigmoid(u_k1 + offset)))
    return _Bin(idx, xs, ys, (x_k, x_k1, y_k, y_k1, d_k, d_k1), dsig)


def _rq_local(v0, x_k, x_k1, y_k, y_k1, d_k, d_k1, *, bound: float, inverse: bool):
    """The rational quadratic of one bin (module docstring), identity outside ``[-B, B]``.

    The bin's size is a difference of its knots (not ``2B (m + c p_k)``), so that its ends map
    exactly to the knots and ``f(B) = B``.
    """
    inside = (v0 >= -bound) & (v0 <= bound)
    v = _clip_keep_grad(v0, -bound, bound)  # every later op sees a point inside the spline
    w, h = x_k1 - x_k, y_k1 - y_k  # >= 2B min_size > 0
    s = h / w
    slopes = d_k + d_k1 - 2.0 * s
    # Work from the nearer end of the bin: the rational quadratic is symmetric under the half-turn
    # (x, y, d_k, d_k1) -> (x_k1 - x, y_k1 - y, d_k1, d_k), and measuring from the nearer knot
    # keeps rounding small near both knots (f(x_k1) = y_k1 exactly, in both directions).
    lo, hi = (y_k, y_k1) if inverse else (x_k, x_k1)
    upper = v - lo > hi - v
    dv = jnp.where(upper, hi - v, v - lo)
    d_near, d_far = jnp.where(upper, d_k1, d_k), jnp.where(upper, d_k, d_k1)
    if inverse:
        # Solve a xi^2 + b xi + c = 0 for xi in [0, 1] (Durkan et al. 2019), in the near frame.
        a = h * (s - d_near) + dv * slopes
        b = h * d_near - dv * slopes
        c = -s * dv
        disc = b * b - 4.0 * a * c
        # Clamp at 0 with a double where: sqrt's gradient at 0 is infinite and would leak NaN.
        pos = disc > 0
        sqrt_disc = jnp.where(pos, jnp.sqrt(jnp.where(pos, disc, 1.0)), 0.0)
        # The root 2c / (-b - sqrt(disc)) avoids the cancellation of (-b + sqrt(disc)) / 2a;
        # its denominator is < 0 (it equals -2 h d_near at dv = 0 and -2 s h at dv = h).
        xi = _clip_straight_through(2.0 * c / (-b - sqrt_disc), 0.0, 1.0)
    else:
        xi = _clip_straight_through(dv / w, 0.0, 1.0)
    xi1mxi = xi * (1.0 - xi)
    denominator = s + slopes * xi1mxi  # >= s / 2 > 0
    log_det = (
        2.0 * jnp.log(s)
        + jnp.log(d_far * xi * xi + 2.0 * s * xi1mxi + d_near * (1.0 - xi) ** 2)
        - 2.0 * jnp.log(denominator)
    )
    if inverse:
        step = xi * w
        out, log_det = jnp.where(upper, x_k1 - step, x_k + step), -log_det
    else:
        step = h * (s * xi * xi + d_near * xi1mxi) / denominator
        out = jnp.where(upper, y_k1 - step, y_k + step)
    return jnp.where(inside, out, v0), jnp.where(inside, log_det, jnp.zeros_like(log_det))


def _to_rows(x: Array, raw: Array) -> tuple[Array, Array]:
    """``x`` as ``(N,)`` and ``raw`` as ``(P, N)``: per-bin quantities are contiguous rows."""
    return x.reshape(-1), _transpose(raw.reshape(-1, raw.shape[-1]))


def _batched(core: Callable) -> Callable:
    """``core(x, raw)`` with a batching rule that folds the mapped axis into the scalars.

    ``core`` is jitted so that its trace is cached: the layers of a flow share one trace per
    shape (tracing and lowering a 32-layer flow's gradient took about 0.3 s less).
    """
    fn = custom_vmap(jax.jit(core))

    @fn.def_vmap
    def rule(axis_size: int, in_batched: list[bool], x: Array, raw: Array):
        x = x if in_batched[0] else jnp.broadcast_to(x, (axis_size, *x.shape))
        raw = raw if in_batched[1] else jnp.broadcast_to(raw, (axis_size, *raw.shape))
        out = fn(x, raw)
        return out, jax.tree.map(lambda _: True, out)

    return fn


@functools.cache
def _spline_fn(cfg: _Config) -> Callable[[Array, Array], tuple[Array, Array]]:
    """``f(x, raw) -> (y, log|dy/dx|)`` elementwise; ``raw`` has shape ``x.shape + (3K - 1,)``."""
    k, bound = cfg.num_bins, cfg.bound
    local = functools.partial(_rq_local, bound=bound, inverse=cfg.inverse)

    @_batched
    def primal(x: Array, raw: Array) -> tuple[Array, Array]:
        v0, rows = _to_rows(x, raw)
        out, log_det = local(v0, *_bin(v0, rows, cfg).local)
        return out.reshape(x.shape), log_det.reshape(x.shape)

    @_batched
    def derivatives(x: Array, raw: Array) -> tuple[Array, ...]:
        """``y, log_det`` and their derivatives in ``x`` and in ``raw`` (comment above)."""
        v0, rows = _to_rows(x, raw)
        bin_ = _bin(v0, rows, cfg)
        (out, log_det), vjp = jax.vjp(local, v0, *bin_.local)
        one, zero = jnp.ones_like(out), jnp.zeros_like(out)
        # Row 0: derivatives of the output; row 1: of the log-det.
        cotangents = (jnp.stack([one, zero]), jnp.stack([zero, one]))
        g_v, g_xk, g_xk1, g_yk, g_yk1, g_dk, g_dk1 = jax.vmap(vjp)(cotangents)
        bins, inner = jnp.arange(k)[:, None], jnp.arange(k - 1)[:, None]
        onehot = bins == bin_.idx
        coefs = []
        for knots, m, g0, g1 in ((bin_.widths, cfg.min_bin_width, g_xk, g_xk1),
                                 (bin_.heights, cfg.min_bin_height, g_yk, g_yk1)):
            scale = 2.0 * bound * (1.0 - m * k)
            cum_k = jnp.sum(jnp.where(onehot, knots.cum[:-1], 0.0), axis=0)
            cum_k1 = jnp.sum(jnp.where(onehot, knots.cum[1:], 0.0), axis=0)
            every = (-scale * (g0 * cum_k + g1 * cum_k1))[:, None]
            at = jnp.where(bins < bin_.idx, (scale * (g0 + g1))[:, None],
                           jnp.where(onehot, (scale * g1)[:, None], 0.0))
            coefs.append(knots.probs * (every + at))
        coefs.append(jnp.where(inner == bin_.idx - 1, (g_dk * bin_.dsig[0])[:, None],
                               jnp.where(inner == bin_.idx, (g_dk1 * bin_.dsig[1])[:, None], 0.0)))
        d_raw = jnp.concatenate(coefs, axis=1)  # (2, P, N)
        results = [out.reshape(x.shape), log_det.reshape(x.shape)]
        # A plain transpose here: XLA folds it into the coefficients' one consumer (the store of
        # the residuals for the reverse pass, or the tangent's product), which measured faster
        # than materializing it with ``_transpose``.
        for row in range(2):
            results += [g_v[row].reshape(x.shape), d_raw[row].T.reshape(raw.shape)]
        return tuple(results)

    @jax.custom_jvp
    def spline_fn(x: Array, raw: Array) -> tuple[Array, Array]:
        return primal(x, raw)

    @spline_fn.defjvp
    def _jvp(primals, tangents):
        x_dot, raw_dot = tangents
        out, log_det, dx_out, draw_out, dx_ld, draw_ld = derivatives(*primals)
        out_dot = dx_out * x_dot + jnp.sum(draw_out * raw_dot, axis=-1)
        ld_dot = dx_ld * x_dot + jnp.sum(draw_ld * raw_dot, axis=-1)
        return (out, log_det), (out_dot, ld_dot)

    return spline_fn


def _config(num_bins: int, bound: float, inverse: bool, min_bin_width: float,
            min_bin_height: float, min_derivative: float, where: str) -> _Config:
    """Checks the spline's settings; ``where`` names the caller in the error."""
    if num_bins < 1:
        raise ValueError(f"{where}: num_bins must be >= 1, got {num_bins}.")
    if not bound > 0:
        raise ValueError(f"{where}: bound must be positive, got {bound}.")
    for name, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if value * num_bins >= 1.0:
            raise ValueError(f"{where}: {name}={value} times {num_bins} bins must be < 1.")
    if not 0.0 < min_derivative < 1.0:
        raise ValueError(f"{where}: min_derivative must be in (0, 1), got {min_derivative}.")
    return _Config(int(num_bins), float(bound), bool(inverse), float(min_bin_width),
                   float(min_bin_height), float(min_derivative))


def _apply(x: Array, raw: Array, cfg: _Config) -> tuple[Array, Array]:
    """Broadcasts ``x`` against ``raw[..., 0]`` and runs the spline in their common dtype."""
    dtype = jnp.result_type(x, raw, jnp.float32)
    x, raw = jnp.asarray(x, dtype), jnp.asarray(raw, dtype)
    shape = jnp.broadcast_shapes(x.shape, raw.shape[:-1])
    x = jnp.broadcast_to(x, shape)
    raw = jnp.broadcast_to(raw, (*shape, raw.shape[-1]))
    return _spline_fn(cfg)(x, raw)


def rational_quadratic_spline(
    x: Array,
    unnormalized_widths: Array,
    unnormalized_heights: Array,
    unnormalized_derivatives: Array,
    *,
    bound: float,
    inverse: bool,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Array, Array]:
    """Elementwise monotone rational-quadratic spline on ``[-B, B]`` with identity tails.

    Args:
      x: inputs of shape ``(...,)`` (data ``y`` when ``inverse=True``); any real values.
      unnormalized_widths: ``(..., K)`` raw bin widths (softmax-normalized).
      unnormalized_heights: ``(..., K)`` raw bin heights (softmax-normalized).
      unnormalized_derivatives: ``(..., K-1)`` raw derivatives at the interior knots.
      bound: ``B``; the spline acts on ``[-B, B]``, ``y = x`` outside.
      inverse: if True, apply the inverse spline.
      min_bin_width: minimum bin width as a fraction of ``2B``; needs ``K * min < 1``.
      min_bin_height: minimum bin height as a fraction of ``2B``; needs ``K * min < 1``.
      min_derivative: minimum interior knot derivative, in ``(0, 1)``.

    Returns:
      ``(y, log|dy/dx|)`` elementwise, both of the broadcast batch shape. For ``inverse=True`` the
      log-det is ``log|dx/dy| = -log|f'(x)|`` at the returned ``x``. Outside ``[-B, B]`` the output
      is the input and the log-det is 0.

    The input is clipped into ``[-B, B]`` before any arithmetic and the tails are selected with
    ``where`` afterwards, so values and gradients (w.r.t. inputs and parameters) are finite for
    every finite input, in both branches of the ``where``. Forward- and reverse-mode derivatives
    come from a custom JVP (see the comment above ``_transpose``).
    """
    num_bins = unnormalized_widths.shape[-1]
    if unnormalized_heights.shape[-1] != num_bins:
        raise ValueError(
            f"rational_quadratic_spline: widths have {num_bins} bins but heights have "
            f"{unnormalized_heights.shape[-1]}."
        )
    if unnormalized_derivatives.shape[-1] != num_bins - 1:
        raise ValueError(
            f"rational_quadratic_spline: {num_bins} bins need {num_bins - 1} interior derivatives, "
            f"got {unnormalized_derivatives.shape[-1]}."
        )
    cfg = _config(num_bins, bound, inverse, min_bin_width, min_bin_height, min_derivative,
                  "rational_quadratic_spline")
    parts = (unnormalized_widths, unnormalized_heights, unnormalized_derivatives)
    shape = jnp.broadcast_shapes(jnp.shape(x), *(jnp.shape(p)[:-1] for p in parts))
    dtype = jnp.result_type(x, *parts, jnp.float32)
    raw = jnp.concatenate(
        [jnp.broadcast_to(jnp.asarray(p, dtype), (*shape, p.shape[-1])) for p in parts], axis=-1
    )
    return _apply(x, raw, cfg)


def spline_transformer(
    num_bins: int = 8,
    bound: float = 3.0,
    *,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> Transformer:
    """A rational-quadratic spline as a :class:`Transformer` with ``3K - 1`` raw parameters.

    ``raw[..., :K]`` are the unnormalized widths, ``raw[..., K:2K]`` the unnormalized heights and
    ``raw[..., 2K:]`` the ``K - 1`` unnormalized interior derivatives. ``raw = 0`` is the identity.
    """
    args = (num_bins, bound, min_bin_width, min_bin_height, min_derivative)
    configs = {inv: _config(num_bins, bound, inv, *args[2:], "spline_transformer")
               for inv in (False, True)}
    num_params = 3 * num_bins - 1

    def apply(raw: Array, x: Array, inverse: bool) -> tuple[Array, Array]:
        if raw.shape[-1] != num_params:
            raise ValueError(
                f"spline_transformer: {num_bins} bins need raw parameters with last axis "
                f"{num_params}, got shape {tuple(raw.shape)}."
            )
        return _apply(x, raw, configs[inverse])

    def forward(raw: Array, x: Array) -> tuple[Array, Array]:
        return apply(raw, x, inverse=False)

    def inverse(raw: Array, y: Array) -> tuple[Array, Array]:
        return apply(raw, y, inverse=True)

    return Transformer(num_params, forward, inverse)


def spline(
    num_bins: int = 8,
    bound: float = 3.0,
    *,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> Bijector:
    """An elementwise rational-quadratic spline bijector with its own learnable parameters.

    Params are one array of shape ``(*event_shape, 3K - 1)`` (layout as in
    :func:`spline_transformer`); ``init`` returns zeros, which is exactly the identity map (uniform
    bins, all knot derivatives 1), so the key is unused. ``context`` is accepted and ignored.
    The log-det is the sum over the event of the elementwise log-derivatives.
    """
    t = spline_transformer(
        num_bins,
        bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )

    def init(key: Array, x: Array, context: Array | None = None) -> Array:
        del key, context
        dtype = jnp.result_type(x, jnp.float32)
        return jnp.zeros((*jnp.shape(x), t.num_params), dtype)

    def _check(params: Array, x: Array) -> None:
        if params.shape[-1:] != (t.num_params,):
            raise ValueError(
                f"spline: {num_bins} bins need params with last axis {t.num_params}, "
                f"got shape {tuple(params.shape)}."
            )
        check_event(x, params.shape[:-1], "spline")

    def forward(params: Array, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        _check(params, x)
        y, ldj = t.forward(params, x)
        return y, jnp.sum(ldj)

    def inverse(params: Array, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        _check(params, y)
        x, ldj = t.inverse(params, y)
        return x, jnp.sum(ldj)

    return Bijector(init, forward, inverse)
