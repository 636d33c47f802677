"""The multi-scale factor-out architecture of RealNVP and Glow, and its learned split prior."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array, Bijector, Params, chain, check_event, invert, scan
from gen.flows.image._common import Shape3
from gen.flows.image._coupling import ZeroConv, channel_coupling
from gen.flows.image._mixing import squeeze


def _on_channels(bijector: Bijector, n: int) -> Bijector:
    """Applies ``bijector`` to the first ``n`` channels of an image; the rest pass through."""

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        return bijector.init(key, x[..., :n], context)

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        y, ldj = bijector.forward(params, x[..., :n], context)
        return jnp.concatenate([y, x[..., n:]], axis=-1), ldj

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        x, ldj = bijector.inverse(params, y[..., :n], context)
        return jnp.concatenate([x, y[..., n:]], axis=-1), ldj

    return Bijector(init, forward, inverse)


def alternate(make: Callable[[int], Bijector], n: int) -> Bijector:
    """``n`` layers ``make(0), make(1), make(0), ...`` (alternating parity), forward order.

    The ``(make(0), make(1))`` pairs are structurally identical, so they run under ``scan``
    (compile time does not grow with ``n``); an odd last layer is chained after. Params:
    ``(stacked pair params[, last layer params])``.
    """
    if n < 1:
        raise ValueError(f"alternate: need n >= 1 layers, got {n}.")
    pairs, odd = divmod(n, 2)
    parts = [scan(chain(make(0), make(1)), pairs)] if pairs else []
    if odd:
        parts.append(make(0))
    return chain(*parts)


def split_prior(context_dim: int | None = None, kernel_size: int = 3) -> Bijector:
    """Glow's learned prior for the factored-out half, as a bijector on the ``(H, W, C)`` tensor
    at a split (C even): with ``a, b`` the first and last ``C/2`` channels,

        b ~ N(mu(a, context), exp(logs(a, context))^2),   (mu, logs) = ZeroConv(a, context)

    written as the affine channel coupling ``b' = (b - mu) exp(-logs)`` (data -> latent), so the
    latent ``b'`` is standard normal. ``logs`` is soft-clamped to (-3, 3). Zero at init (the
    standard-normal factor-out).
    """
    return channel_coupling(
        0, "affine", context_dim=context_dim,
        conditioner=lambda out: ZeroConv(out, kernel_size=kernel_size),
    )


def multi_scale(
    shape: Sequence[int],
    num_scales: int,
    step: Callable[[Shape3], Bijector],
    *,
    pre_squeeze: Callable[[Shape3], Bijector] | None = None,
    final: Callable[[Shape3], Bijector] | None = None,
    learned_prior: bool = False,
    context_dim: int | None = None,
) -> Bijector:
    """The multi-scale factor-out architecture of RealNVP and Glow, as one bijector on
    ``(H, W, C)`` whose latent has the same shape, so ``make_flow(standard_normal(shape), b)``
    works.

    Data -> latent (``inverse``), at scale ``i`` on a tensor of shape ``s = (h, w, c)``:

    1. ``pre_squeeze(s)`` (RealNVP's checkerboard couplings; none for Glow);
    2. squeeze to ``(h/2, w/2, 4c)``;
    3. ``step((h/2, w/2, 4c))``, e.g. K Glow steps under ``scan``;
    4. split the channels: the last ``2c`` are factored out to the base distribution (with
       ``learned_prior``: first standardized by ``split_prior``, conditioned on the kept half);
       the first ``2c`` go on to scale ``i + 1`` on shape ``(h/2, w/2, 2c)``;
    5. the kept half's latent and the factored-out half are concatenated and unsqueezed.

    The last scale runs ``final(s)`` instead, by default squeeze, ``step``, unsqueeze (Glow's
    top level; RealNVP's is checkerboard couplings without a squeeze).

    Latent layout: the latent is the data-side layout of steps 2-5 read backwards. Unsqueeze the
    latent to ``(h/2, w/2, 4c)``: its last ``2c`` channels are the variables factored out at this
    scale, and its first ``2c`` channels hold the next scale's latent, recursively. Forward
    (sampling) reverses every step.

    Args:
      shape: the event shape ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2^n`` with
        ``n`` the number of squeezes (``num_scales``, or ``num_scales - 1`` with ``final``).
      num_scales: the number of scales, L >= 1 (L - 1 factor-outs).
      step: ``step(squeezed_shape) -> Bijector``, the flow after each squeeze.
      pre_squeeze: ``pre_squeeze(shape) -> Bijector`` before each squeeze but the last scale's.
      final: ``final(shape) -> Bijector`` for the last scale; default squeeze, step, unsqueeze.
      learned_prior: Glow's learned conditional prior at each split (``split_prior``).
      context_dim: the learned prior's context size (None: from ``init``'s context).

    Params: nested tuples following ``chain``: per scale
    ``((), next_scale, [prior], step, (), [pre_squeeze])``, or ``final``'s params at the last.
    """
    if len(tuple(shape)) != 3:
        raise ValueError(f"multi_scale: shape must be (H, W, C), got {tuple(shape)}.")
    shape3: Shape3 = tuple(int(d) for d in shape)  # type: ignore[assignment]
    if num_scales < 1:
        raise ValueError(f"multi_scale: num_scales must be >= 1, got {num_scales}.")
    n_squeeze = num_scales - (1 if final is not None else 0)
    h, w, _ = shape3
    if h % 2**n_squeeze or w % 2**n_squeeze:
        raise ValueError(
            f"multi_scale: {n_squeeze} squeezes need H and W divisible by {2**n_squeeze}, got "
            f"shape {shape3}. Pad or crop the images, or use fewer scales."
        )

    def level(i: int, s: Shape3) -> Bijector:
        hh, ww, cc = s
        squeezed = (hh // 2, ww // 2, 4 * cc)
        if i == num_scales - 1:
            if final is not None:
                return final(s)
            return chain(squeeze(), step(squeezed), invert(squeeze()))
        parts = [squeeze(), _on_channels(level(i + 1, (hh // 2, ww // 2, 2 * cc)), 2 * cc)]
        if learned_prior:
            parts.append(split_prior(context_dim))
        parts += [step(squeezed), invert(squeeze())]
        if pre_squeeze is not None:
            parts.append(pre_squeeze(s))
        return chain(*parts)

    body = level(0, shape3)
    # Compiled: run eagerly, an init of this depth dispatches (and compiles) op by op.
    body_init = jax.jit(body.init)

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        check_event(x, shape3, "multi_scale")
        return body_init(key, jnp.asarray(x), context)

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        check_event(x, shape3, "multi_scale")
        return body.forward(params, x, context)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        check_event(y, shape3, "multi_scale")
        return body.inverse(params, y, context)

    return Bijector(init, forward, inverse)
