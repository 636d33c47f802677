"""Flow models on vectors: MAF, NSF with spline couplings (NSF-C) and NSF-AR.

Every model is ``make_flow(standard_normal((dim,)), bijector)`` with ``L = num_layers`` flow
layers ``f_i`` and fixed-structure mixing layers ``m`` (a reversal or an LU linear map) between
them. In the forward (latent -> data) direction::

    bijector = chain(m, scan(chain(f, m), L))       i.e.   m, f_1, m, f_2, m, ..., f_L, m

The ``(f, m)`` pairs are structurally identical, so they run under ``scan``: the compiled
program holds one pair whatever ``L`` (compile time does not grow with depth). The outer ``m``
closes the stack on the other side, as in Durkan et al.'s NSF code (a linear layer before every
step and one after the last). Params: ``{"base": (), "bijector": (m, stacked (f, m) pairs)}``.
RealNVP stays in ``gen.flows.flow``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> flow = flows.nsf_coupling(2, num_layers=4, hidden=(32, 32))
    >>> params = flow.init(jax.random.key(0), jnp.zeros(2))
    >>> flow.log_prob(params, jnp.ones(2)).shape
    ()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import numpy as np

from gen.flows.autoregressive import masked_autoregressive
from gen.flows.bijector import Array, Bijector, chain, scan
from gen.flows.coupling import split_coupling
from gen.flows.distributions import standard_normal
from gen.flows.flow import Flow, make_flow
from gen.flows.linear import lu_linear, reverse
from gen.flows.rational_quadratic import spline_transformer
from gen.flows.transformers import Transformer

LINEAR_LAYERS = ("lu", "reverse")


def _check(name: str, dim: int, num_layers: int, min_dim: int = 1) -> None:
    if dim < min_dim:
        raise ValueError(f"{name}: dim must be >= {min_dim}, got {dim}.")
    if num_layers < 1:
        raise ValueError(f"{name}: num_layers must be >= 1, got {num_layers}.")


def _mixing(name: str, linear: str, dim: int) -> Bijector:
    """``"reverse"``: ``x[::-1]``; ``"lu"``: ``W = P L U`` starting near the reversal ``P``."""
    if linear == "reverse":
        return reverse(dim)
    if linear == "lu":
        return lu_linear(dim, perm=np.arange(dim)[::-1])
    raise ValueError(f"{name}: linear must be one of {LINEAR_LAYERS}, got {linear!r}.")


def _stack(layer: Bijector, mixing: Bijector, num_layers: int) -> Bijector:
    """``m, f_1, m, ..., f_L, m`` in the forward direction, the ``(f, m)`` pairs under scan."""
    return chain(mixing, scan(chain(layer, mixing), num_layers))


def maf(
    dim: int,
    num_layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    transformer: str | Transformer = "affine",
    context_dim: int | None = None,
    activation: Callable[[Array], Array] = nn.gelu,
) -> Flow:
    """MAF (Papamakarios et al. 2017): ``num_layers`` masked autoregressive layers with the
    order reversed between them, over a standard normal base of shape ``(dim,)``.

    ``log_prob`` is one MADE pass per layer; ``sample`` is ``dim`` passes per layer. Each layer
    starts at the identity. ``transformer``: ``"affine"`` (MAF), ``"spline"`` or a
    ``Transformer``; ``context_dim``: conditioning vector size (every layer sees it).
    """
    _check("maf", dim, num_layers)
    layer = masked_autoregressive(
        transformer, hidden, context_dim, event_dim=dim, activation=activation
    )
    return make_flow(standard_normal((dim,)), _stack(layer, reverse(dim), num_layers))


def nsf_coupling(
    dim: int,
    num_layers: int = 8,
    num_bins: int = 8,
    bound: float = 3.0,
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    linear: str = "lu",
    activation: Callable[[Array], Array] = nn.gelu,
) -> Flow:
    """NSF-C (Durkan et al. 2019): rational-quadratic spline couplings between linear layers.

    Each coupling passes ``x[:dim // 2]`` through and transforms the rest with a ``num_bins``-bin
    spline on ``[-bound, bound]`` (identity tails outside) whose ``3 K - 1`` parameters per dim
    come from an MLP of ``[x[:dim // 2], context]``. Between couplings: ``linear="lu"`` (the
    paper's LU-decomposed linear map, starting near the reversal so that the halves alternate)
    or ``"reverse"``. Couplings start at the identity; the LU layers at ``W ~ P``.
    """
    _check("nsf_coupling", dim, num_layers, min_dim=2)
    t = spline_transformer(num_bins, bound)
    layer = split_coupling(dim // 2, t, hidden, context_dim, event_dim=dim, activation=activation)
    return make_flow(
        standard_normal((dim,)), _stack(layer, _mixing("nsf_coupling", linear, dim), num_layers)
    )


def nsf_autoregressive(
    dim: int,
    num_layers: int = 5,
    num_bins: int = 8,
    bound: float = 3.0,
    hidden: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    linear: str = "lu",
    activation: Callable[[Array], Array] = nn.gelu,
) -> Flow:
    """NSF-AR (Durkan et al. 2019): MAF layers with a rational-quadratic spline transformer
    (``num_bins`` bins on ``[-bound, bound]``, identity tails), between linear layers
    (``linear="lu"`` or ``"reverse"``, as in :func:`nsf_coupling`).

    ``log_prob`` is one MADE pass per layer; ``sample`` is ``dim`` passes per layer.
    """
    _check("nsf_autoregressive", dim, num_layers)
    t = spline_transformer(num_bins, bound)
    layer = masked_autoregressive(t, hidden, context_dim, event_dim=dim, activation=activation)
    return make_flow(
        standard_normal((dim,)),
        _stack(layer, _mixing("nsf_autoregressive", linear, dim), num_layers),
    )
