"""Coupling layers on vector events.

A coupling layer splits the event into conditioning dims ``x_c`` and transformed dims ``x_t``::

    y_c = x_c
    y_t = g(x_t; theta),   theta = MLP([x_c, context])
    log|det dy/dx| = sum_i log|g'(x_t[i]; theta[i])|

``g`` is a ``Transformer`` (``gen.flows.transformers``): a monotone elementwise map with
``num_params`` raw parameters per transformed dim. The conditioner's last layer starts at zero, so
a layer starts as ``g`` at zero raw parameters (the identity for ``"affine"``, ``"additive"`` and
``"spline"``).

Example::

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from gen import flows
    >>> layer = flows.masked_coupling(np.arange(4) % 2 == 0, "affine", hidden=(32, 32))
    >>> params = layer.init(jax.random.key(0), jnp.zeros(4))
    >>> y, ldj = layer.forward(params, jnp.ones(4))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen.flows.bijector import (
    Array,
    Bijector,
    Params,
    check_context,
    check_context_dim,
    check_event,
)
from gen.flows.transformers import Transformer, get_transformer
from gen.nn.mlp import MLP, mlp_input_dim, mlp_output_dim


def _as_slice(idx: np.ndarray) -> slice | None:
    """``idx`` as ``slice(start, stop, step)`` if it is an increasing arithmetic progression."""
    if idx.size == 1:
        return slice(int(idx[0]), int(idx[0]) + 1, 1)
    step = int(idx[1] - idx[0])
    if step > 0 and np.all(np.diff(idx) == step):
        return slice(int(idx[0]), int(idx[-1]) + 1, step)
    return None


def _take(x: Array, idx: np.ndarray) -> Array:
    """``x[idx]`` for a static index set: a (strided) slice when it is one, else a gather."""
    s = _as_slice(idx)
    if s is None:
        return x[idx]
    return jax.lax.slice(x, (s.start,), (s.stop,), (s.step,))


def _merge(x: Array, xc: Array, xt: Array, cond_idx: np.ndarray, trans_idx: np.ndarray) -> Array:
    """``x`` with ``x[trans_idx] = xt``, where ``xc = x[cond_idx]`` and the two index sets
    partition the event.

    Halves (split coupling) and alternating dims (the checkerboard mask) are put together with a
    concatenate or an interleave, whose transposes are slices; other masks use a scatter.
    """
    c, t = _as_slice(cond_idx), _as_slice(trans_idx)
    xt = xt.astype(x.dtype)  # as the scatter would
    if c is not None and t is not None:
        if c.step == t.step == 1:  # two contiguous blocks
            return jnp.concatenate([xc, xt] if c.start == 0 else [xt, xc])
        if c.step == t.step == 2 and xc.shape == xt.shape:  # even and odd dims
            pair = [xc, xt] if c.start == 0 else [xt, xc]
            return jnp.stack(pair, axis=-1).reshape(x.shape)
    return x.at[trans_idx].set(xt)


def _coupling(
    name: str,
    n_cond: int,
    indices: Callable[[int], tuple[np.ndarray, np.ndarray]],
    dim: int | None,
    transformer: str | Transformer,
    hidden: Sequence[int],
    context_dim: int | None,
    activation: Callable[[Array], Array],
) -> Bijector:
    """A coupling layer over a vector event with ``n_cond`` conditioning dims.

    ``indices(D) -> (cond_idx, trans_idx)`` are static index sets for an event of size ``D``.
    With ``dim=None`` the event size comes from ``init``'s example event and is read back from
    the conditioner's output size.
    """
    g = get_transformer(transformer)
    check_context_dim(context_dim, name)

    def conditioner_input(xc: Array, context: Array | None, expected_ctx: int | None) -> Array:
        """``[x_c, context]``; ``expected_ctx`` is None at init (then ``context_dim`` rules)."""
        size = None if context is None else int(np.prod(jnp.shape(context)))
        check_context(context, size, expected_ctx, context_dim, name)
        if context is None:
            return xc
        return jnp.concatenate([xc, jnp.reshape(context, (-1,)).astype(xc.dtype)])

    def conditioner(n_trans: int) -> MLP:
        return MLP((*hidden, n_trans * g.num_params), activation=activation, out_init_zero=True)

    def event_dim(params: Params) -> int:
        return dim if dim is not None else n_cond + mlp_output_dim(params) // g.num_params

    def split(params_or_dim: Params | int, x: Array) -> tuple[np.ndarray, np.ndarray]:
        d = params_or_dim if isinstance(params_or_dim, int) else event_dim(params_or_dim)
        check_event(x, (d,), name)
        return indices(d)

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        x = jnp.asarray(x)
        if dim is None and (x.ndim != 1 or x.shape[0] <= n_cond):
            raise ValueError(
                f"{name}: expected one vector event of shape (D,) with D > {n_cond}, got shape "
                f"{x.shape}. Bijectors act on a single event; map batches with jax.vmap."
            )
        cond_idx, trans_idx = split(x.shape[0] if dim is None else dim, x)
        x = x.astype(jnp.result_type(x.dtype, jnp.float32))
        return conditioner(trans_idx.size).init(key, conditioner_input(x[cond_idx], context, None))

    def raw_params(params: Params, xc: Array, n_trans: int, context: Array | None) -> Array:
        inp = conditioner_input(xc, context, mlp_input_dim(params) - n_cond)
        return conditioner(n_trans).apply(params, inp).reshape(n_trans, g.num_params)

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        cond_idx, trans_idx = split(params, x)
        xc = _take(x, cond_idx)
        raw = raw_params(params, xc, trans_idx.size, context)
        yt, ldj = g.forward(raw, _take(x, trans_idx))
        return _merge(x, xc, yt, cond_idx, trans_idx), jnp.sum(ldj)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        cond_idx, trans_idx = split(params, y)
        yc = _take(y, cond_idx)
        raw = raw_params(params, yc, trans_idx.size, context)
        xt, ldj = g.inverse(raw, _take(y, trans_idx))
        return _merge(y, yc, xt, cond_idx, trans_idx), jnp.sum(ldj)

    return Bijector(init, forward, inverse)


def masked_coupling(
    mask: Sequence[bool] | np.ndarray,
    transformer: str | Transformer = "affine",
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    activation: Callable[[Array], Array] = nn.gelu,
) -> Bijector:
    """RealNVP-style coupling on a vector event of shape ``(len(mask),)``.

    Dims with ``mask == 1`` pass through and condition the rest: ``y = m x + (1 - m) g(x; theta)``
    with ``theta = MLP([x[m == 1], context])`` (the same information as ``x * m``, without the
    zeros). log-det ``sum_{i: m_i = 0} log g'(x_i)``.

    Args:
      mask: static binary mask with at least one 1 and one 0.
      transformer: a name in ``TRANSFORMERS`` (``"affine"``, ``"additive"``, ``"spline"``,
        ``"glow"``) or a ``Transformer`` (any object with ``num_params``, ``forward``, ``inverse``).
      hidden: hidden layer widths of the conditioner MLP.
      context_dim: size of the conditioning vector. ``None`` takes it from ``init``'s context
        (no context at init: unconditional). A conditional layer called without context, or an
        unconditional one called with context, raises ``ValueError``.
      activation: the conditioner's nonlinearity.
    """
    m = np.asarray(mask)
    if m.ndim != 1 or not np.isin(m, (0, 1)).all():
        raise ValueError(f"masked_coupling: mask must be a 1-D binary vector, got {mask!r}.")
    m = m.astype(bool)
    if m.all() or not m.any():
        raise ValueError(
            "masked_coupling: mask needs at least one 1 (conditioning dim) and one 0 "
            f"(transformed dim), got {m.astype(int).tolist()}."
        )
    # int32: a static index array's dtype must not depend on jax_enable_x64.
    cond_idx, trans_idx = np.flatnonzero(m).astype(np.int32), np.flatnonzero(~m).astype(np.int32)
    return _coupling(
        "masked_coupling",
        cond_idx.size,
        lambda d: (cond_idx, trans_idx),
        m.size,
        transformer,
        hidden,
        context_dim,
        activation,
    )


def split_coupling(
    split_index: int,
    transformer: str | Transformer = "affine",
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    event_dim: int | None = None,
    activation: Callable[[Array], Array] = nn.gelu,
) -> Bijector:
    """Coupling on a vector event: ``x[:split_index]`` passes through and conditions
    ``x[split_index:]``, i.e. ``masked_coupling(arange(D) < split_index, ...)``; see it for the
    other arguments. The event size ``D`` is ``event_dim``, or else taken from ``init``'s example
    event (and checked on every call). Reverse or permute between layers so every dim changes.
    """
    if split_index < 1 or (event_dim is not None and split_index >= event_dim):
        raise ValueError(
            f"split_coupling: need 0 < split_index < event_dim, got split_index={split_index}, "
            f"event_dim={event_dim}."
        )
    return _coupling(
        "split_coupling",
        split_index,
        lambda d: (
            np.arange(0, split_index, dtype=np.int32),
            np.arange(split_index, d, dtype=np.int32),
        ),
        event_dim,
        transformer,
        hidden,
        context_dim,
        activation,
    )
