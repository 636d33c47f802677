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

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.flows.bijector import Bijector, check_event

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


def _knots(unnormalized: Array, bound: float, min_size: float) -> Array:
    """Knot positions ``(..., K+1)`` from ``-B`` to ``B`` with bins at least ``2 B min_size``."""
    num_bins = unnormalized.shape[-1]
    sizes = jax.nn.softmax(unnormalized, axis=-1)
    sizes = min_size + (1.0 - min_size * num_bins) * sizes
    cum = jnp.cumsum(sizes[..., :-1], axis=-1)
    inner = 2.0 * bound * cum - bound
    edge = jnp.full((*inner.shape[:-1], 1), bound, inner.dtype)
    # The end knots are set exactly (not via the cumsum) so that f(+-B) = +-B to the last bit.
    return jnp.concatenate([-edge, inner, edge], axis=-1)


def _derivatives(unnormalized: Array, min_derivative: float) -> Array:
    """Knot derivatives ``(..., K+1)``: 1 at both ends, ``m_d + softplus(u + c)`` inside.

    ``c = log(expm1(1 - m_d))`` so that ``u = 0`` gives a derivative of exactly 1.
    """
    offset = math.log(math.expm1(1.0 - min_derivative))
    inner = min_derivative + jax.nn.softplus(unnormalized + offset)
    one = jnp.ones((*inner.shape[:-1], 1), inner.dtype)
    return jnp.concatenate([one, inner, one], axis=-1)


def _select_bin(v: Array, knots: Array) -> Array:
    """One-hot mask ``(..., K)`` of the bin holding ``v`` (``v`` in ``[knots[0], knots[-1]]``).

    The bin index is a sum of comparisons against the K-1 interior knots, ``k = sum_j [v >= t_j]``,
    and the bin's parameters are read with a one-hot dot product (:func:`_pick`), not a gather:
    no loops or data-dependent control flow, so it vectorizes under ``vmap``/``jit`` on CPU, GPU
    and TPU (where gathers are slow), and its gradient is a dense multiply instead of a scatter.
    Measured on 2 CPU cores, 65k scalars, K=8 (K=32): forward 4.7 ms (38) vs 2.9 ms (30) for
    ``searchsorted``/``take_along_axis``, but value-and-grad 9.3 ms (73) vs 20-24 ms (81-85);
    training is gradient-bound, so the one-hot form wins.
    """
    num_bins = knots.shape[-1] - 1
    idx = jnp.sum(v[..., None] >= knots[..., 1:-1], axis=-1)
    return jax.nn.one_hot(idx, num_bins, dtype=knots.dtype)


def _pick(onehot: Array, values: Array) -> Array:
    return jnp.sum(onehot * values, axis=-1)


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
    every finite input, in both branches of the ``where``.
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
    if bound <= 0:
        raise ValueError(f"rational_quadratic_spline: bound must be positive, got {bound}.")
    for name, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if value * num_bins >= 1.0:
            raise ValueError(
                f"rational_quadratic_spline: {name}={value} times {num_bins} bins must be < 1."
            )
    if not 0.0 < min_derivative < 1.0:
        raise ValueError(
            f"rational_quadratic_spline: min_derivative must be in (0, 1), got {min_derivative}."
        )

    dtype = jnp.result_type(
        x, unnormalized_widths, unnormalized_heights, unnormalized_derivatives, jnp.float32
    )
    x = jnp.asarray(x, dtype)
    xs = _knots(jnp.asarray(unnormalized_widths, dtype), bound, min_bin_width)
    ys = _knots(jnp.asarray(unnormalized_heights, dtype), bound, min_bin_height)
    ds = _derivatives(jnp.asarray(unnormalized_derivatives, dtype), min_derivative)

    inside = (x >= -bound) & (x <= bound)
    v = _clip_keep_grad(x, -bound, bound)  # every later op sees a point inside the spline

    onehot = _select_bin(v, ys if inverse else xs)
    x_k, x_k1 = _pick(onehot, xs[..., :-1]), _pick(onehot, xs[..., 1:])
    y_k, y_k1 = _pick(onehot, ys[..., :-1]), _pick(onehot, ys[..., 1:])
    d_k, d_k1 = _pick(onehot, ds[..., :-1]), _pick(onehot, ds[..., 1:])
    w, h = x_k1 - x_k, y_k1 - y_k  # >= 2B min_size > 0
    s = h / w
    slopes = d_k + d_k1 - 2.0 * s

    if inverse:
        # Solve a xi^2 + b xi + c = 0 for xi in [0, 1], with dy = y - y_k (Durkan et al. 2019).
        dy = v - y_k
        a = h * (s - d_k) + dy * slopes
        b = h * d_k - dy * slopes
        c = -s * dy
        disc = b * b - 4.0 * a * c
        # Clamp at 0 with a double where: sqrt's gradient at 0 is infinite and would leak NaN.
        pos = disc > 0
        sqrt_disc = jnp.where(pos, jnp.sqrt(jnp.where(pos, disc, 1.0)), 0.0)
        # The root 2c / (-b - sqrt(disc)) avoids the cancellation of (-b + sqrt(disc)) / 2a;
        # its denominator is < 0 (it equals -2 h d_k at dy = 0 and -2 s h at dy = h).
        xi = _clip_straight_through(2.0 * c / (-b - sqrt_disc), 0.0, 1.0)
    else:
        xi = _clip_straight_through((v - x_k) / w, 0.0, 1.0)

    xi1mxi = xi * (1.0 - xi)
    denominator = s + slopes * xi1mxi  # >= s / 2 > 0
    log_det = (
        2.0 * jnp.log(s)
        + jnp.log(d_k1 * xi * xi + 2.0 * s * xi1mxi + d_k * (1.0 - xi) ** 2)
        - 2.0 * jnp.log(denominator)
    )
    if inverse:
        out, log_det = x_k + xi * w, -log_det
    else:
        out = y_k + h * (s * xi * xi + d_k * xi1mxi) / denominator

    out = jnp.where(inside, out, x)
    log_det = jnp.where(inside, log_det, jnp.zeros_like(log_det))
    return out, log_det


class Transformer(NamedTuple):
    """An elementwise transform driven by raw parameters, e.g. from a conditioner network.

    Attributes:
      num_params: raw parameters per transformed scalar (``3K - 1`` for a spline).
      forward: ``forward(raw, x) -> (y, log|dy/dx|)``; ``raw: (..., num_params)``, ``x: (...,)``.
      inverse: ``inverse(raw, y) -> (x, log|dx/dy|)``, elementwise, same shapes.
    """

    num_params: int
    forward: Callable[[Array, Array], tuple[Array, Array]]
    inverse: Callable[[Array, Array], tuple[Array, Array]]


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
    if num_bins < 1:
        raise ValueError(f"spline_transformer: num_bins must be >= 1, got {num_bins}.")
    k = num_bins
    num_params = 3 * k - 1
    kwargs = dict(
        bound=bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )

    def apply(raw: Array, x: Array, inverse: bool) -> tuple[Array, Array]:
        if raw.shape[-1] != num_params:
            raise ValueError(
                f"spline_transformer: {k} bins need raw parameters with last axis {num_params}, "
                f"got shape {tuple(raw.shape)}."
            )
        return rational_quadratic_spline(
            x, raw[..., :k], raw[..., k : 2 * k], raw[..., 2 * k :], inverse=inverse, **kwargs
        )

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
