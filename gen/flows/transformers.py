"""Transformers: the monotone elementwise maps that couplings and autoregressive layers apply.

A ``Transformer`` is ``y = g(x; raw)`` with ``num_params`` raw parameters per transformed dim,
produced by a conditioner network whose last layer starts at zero. ``TRANSFORMERS`` names the
built-in ones and ``get_transformer`` resolves a name or passes a transformer through.

Plugging in a new transformer::

    mine = Transformer(num_params=P, forward=my_fwd, inverse=my_inv)
    layer = masked_coupling(mask, mine)

where ``my_fwd(raw, x) -> (y, ldj)`` takes ``raw`` of shape ``x.shape + (P,)`` and returns ``y``
and the elementwise ``log|dy/dx|``, both of shape ``x.shape`` (``my_inv`` likewise, with
``log|dx/dy|``). Any object with these three attributes works, e.g.
``gen.flows.spline_transformer(num_bins=8)``; the name ``"spline"`` builds that one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array

ElementwiseFn = Callable[[Array, Array], tuple[Array, Array]]


class Transformer(NamedTuple):
    """A monotone elementwise map ``y = g(x; raw)`` driven by a conditioner's raw outputs.

    Attributes:
      num_params: raw parameters per transformed dim.
      forward: ``forward(raw, x) -> (y, ldj)``; ``raw`` has shape ``x.shape + (num_params,)``,
        ``y`` and the elementwise ``ldj = log|dy/dx|`` have shape ``x.shape``.
      inverse: ``inverse(raw, y) -> (x, ldj)`` with ``ldj = log|dx/dy|`` elementwise (the
        negative of the forward's at the corresponding point).

    ``g(.; raw=0)`` should be the identity, or close to it: conditioners start zero-initialized.
    """

    num_params: int
    forward: ElementwiseFn
    inverse: ElementwiseFn


def additive_transformer() -> Transformer:
    """NICE: ``y = x + t`` with ``t = raw[..., 0]``; log-det 0."""

    def forward(raw: Array, x: Array) -> tuple[Array, Array]:
        return x + raw[..., 0], jnp.zeros_like(x)

    def inverse(raw: Array, y: Array) -> tuple[Array, Array]:
        return y - raw[..., 0], jnp.zeros_like(y)

    return Transformer(1, forward, inverse)


def affine_transformer(scale_bound: float = 3.0) -> Transformer:
    """RealNVP: ``y = x * exp(s) + t`` with ``(t, r) = raw[..., 0], raw[..., 1]`` and a soft clamp

        s = scale_bound * tanh(r / scale_bound)      in (-scale_bound, scale_bound),

    so one layer rescales by at most ``exp(scale_bound)`` and an exploding conditioner cannot
    overflow ``exp``. ``s ~ r`` for small ``r``, and ``s = 0`` at ``r = 0``. log-det ``s``
    elementwise (summed by the coupling over transformed dims).
    """
    if not scale_bound > 0:
        raise ValueError(f"affine_transformer: scale_bound must be > 0, got {scale_bound}.")
    bound = float(scale_bound)

    def params(raw: Array) -> tuple[Array, Array]:
        return raw[..., 0], bound * jnp.tanh(raw[..., 1] / bound)

    def forward(raw: Array, x: Array) -> tuple[Array, Array]:
        t, s = params(raw)
        return x * jnp.exp(s) + t, s

    def inverse(raw: Array, y: Array) -> tuple[Array, Array]:
        t, s = params(raw)
        return (y - t) * jnp.exp(-s), -s

    return Transformer(2, forward, inverse)


def glow_affine_transformer() -> Transformer:
    """Glow's affine coupling transform, with ``(t, r) = raw[..., 0], raw[..., 1]`` and
    ``s = sigmoid(r + 2)`` in (0, 1), defined in the data -> latent direction as in Glow:

        inverse (data -> latent):  x = (y + t) * s,      log|dx/dy| = log_sigmoid(r + 2)
        forward (latent -> data):  y = x / s - t,        log|dy/dx| = -log_sigmoid(r + 2)

    The scale cannot blow up the density pass (it only contracts), and sampling expands by at
    most ``1 / s``. At ``raw = 0`` it is the contraction ``s = sigmoid(2) ~ 0.88``, not the
    identity (Glow relies on the ActNorm around it). Compare ``affine_transformer``
    (RealNVP: ``y = x exp(s) + t``, ``s = b tanh(r / b)`` soft-clamped to ``(-b, b)``; identity at
    ``raw = 0``), the name ``"affine"``.
    """

    def forward(raw: Array, x: Array) -> tuple[Array, Array]:
        log_s = jax.nn.log_sigmoid(raw[..., 1] + 2.0)
        return x * jnp.exp(-log_s) - raw[..., 0], -log_s

    def inverse(raw: Array, y: Array) -> tuple[Array, Array]:
        log_s = jax.nn.log_sigmoid(raw[..., 1] + 2.0)
        return (y + raw[..., 0]) * jnp.exp(log_s), log_s

    return Transformer(2, forward, inverse)


def _spline_transformer() -> Transformer:
    # Lazy: rational_quadratic imports Transformer from this module.
    from gen.flows.rational_quadratic import spline_transformer

    return spline_transformer()


TRANSFORMERS: dict[str, Callable[[], Transformer]] = {
    "additive": additive_transformer,
    "affine": affine_transformer,
    "glow": glow_affine_transformer,
    "spline": _spline_transformer,  # rational-quadratic, default settings of spline_transformer
}


def get_transformer(transformer: str | Transformer) -> Transformer:
    """Resolves a name in ``TRANSFORMERS`` or passes a transformer through.

    Any object with ``num_params``, ``forward`` and ``inverse`` attributes is accepted (e.g. the
    result of ``spline_transformer``).
    """
    if isinstance(transformer, str):
        if transformer in TRANSFORMERS:
            return TRANSFORMERS[transformer]()
    elif all(hasattr(transformer, a) for a in ("num_params", "forward", "inverse")):
        return Transformer(int(transformer.num_params), transformer.forward, transformer.inverse)
    raise ValueError(
        f"Unknown transformer {transformer!r}: pass one of {sorted(TRANSFORMERS)} or an object "
        "with num_params, forward(raw, x) and inverse(raw, y), like flows.Transformer."
    )
