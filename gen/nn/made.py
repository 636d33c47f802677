"""MADE: a masked autoencoder for distribution estimation (Germain et al. 2015, arXiv:1502.03509).

An MLP whose weights are masked so that output ``d`` depends only on the inputs that come
before ``d`` in a fixed autoregressive order. It is the conditioner of masked autoregressive
flows (``gen.flows.autoregressive``): one pass gives the transformer parameters of every dim.

Degrees (0-based; the connectivity rule of the paper, Sec. 4):

- **inputs**: the dims in autoregressive order ``order`` (default ``0, 1, ..., D-1``) get degrees
  ``0, ..., D-1``: ``deg(order[k]) = k``. Context features get degree ``-1``, so they connect to
  every hidden unit of the first layer (unmasked).
- **hidden units** take degrees in ``{lo, ..., D-2}`` with ``lo = -1`` with a context and ``0``
  without; a unit of degree ``m`` connects to the units below with degree ``<= m``. With ``H``
  units and ``n = D - 1 - lo`` possible degrees, the degrees cycle ``lo + (i mod n)`` when
  ``H >= n`` (as in flowjax and nflows' "sequential" degrees), else they are spread evenly,
  ``round(linspace(lo, D-2, H))``, so that the first and the last degree are always present.
  Degree ``D-1`` would feed no output and degrees below ``lo`` no input, so neither is used.
  Context-only units (degree ``-1``) are what lets the first dim's parameters depend on the
  context (in nflows they do not).
- **outputs**: ``K`` per dim, arranged as ``out[..., d, :]`` (flat index ``d K + k``), with the
  degree of input ``d``; they connect to hidden units of degree ``< deg(d)`` (strictly). Hence
  ``out[..., d, :]`` depends only on the inputs ``j`` with ``deg(j) < deg(d)`` (and the context).

With ``D = 1`` and no context no hidden unit can feed the output: it is the (learned) bias.
The output layer starts at zero (``out_init_zero``), so a flow layer starts at its transformer's
zero-parameter map, the identity for the transformers of ``gen.flows``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.made import MADE
    >>> net = MADE(num_params=2, hidden=(32, 32))
    >>> variables = net.init(jax.random.key(0), jnp.zeros(4))
    >>> net.apply(variables, jnp.ones(4)).shape
    (4, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def input_degrees(dim: int, order: Sequence[int] | None = None) -> np.ndarray:
    """Degrees of the ``dim`` data inputs: ``deg[order[k]] = k`` (identity order by default)."""
    if order is None:
        return np.arange(dim)
    p = np.asarray(order)
    if p.ndim != 1 or p.size != dim or not np.array_equal(np.sort(p), np.arange(dim)):
        raise ValueError(
            f"MADE: order must be a permutation of range({dim}) (the event size), got "
            f"{list(np.asarray(order).tolist())}."
        )
    deg = np.empty(dim, np.int64)
    deg[p] = np.arange(dim)
    return deg


def hidden_degrees(dim: int, width: int, conditional: bool) -> np.ndarray:
    """Degrees of ``width`` hidden units for ``dim`` inputs: cycling over ``lo..dim-2`` when
    there are enough units, evenly spread otherwise (see the module docstring)."""
    lo, hi = (-1 if conditional else 0), dim - 2
    n = hi - lo + 1
    if n <= 0:  # dim == 1, no context: nothing can feed an output
        return np.full(width, dim - 1)
    if width >= n:
        return lo + np.arange(width) % n
    return np.round(np.linspace(lo, hi, width)).astype(np.int64)


def made_masks(
    dim: int,
    hidden: Sequence[int],
    num_params: int,
    context_dim: int = 0,
    order: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Binary masks ``(fan_in, fan_out)`` of the layers of a MADE, input layer first.

    Inputs are ``[x (dim), context (context_dim)]``; the last mask maps to ``dim * num_params``
    outputs with flat index ``d * num_params + k``.
    """
    deg_x = input_degrees(dim, order)
    prev = np.concatenate([deg_x, -np.ones(context_dim, np.int64)])
    masks = []
    for width in hidden:
        deg = hidden_degrees(dim, width, context_dim > 0)
        masks.append(deg[None, :] >= prev[:, None])
        prev = deg
    out = np.repeat(deg_x, num_params)
    masks.append(out[None, :] > prev[:, None])
    return masks


class MaskedDense(nn.Module):
    """A dense layer ``y = x @ (kernel * mask) + bias`` with a static binary ``mask``.

    The mask is passed at call time (a NumPy array), so it is part of the program, not of the
    params; masked kernel entries are stored but never used (their gradient is zero).
    """

    features: int
    kernel_init: Callable[..., Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., Array] = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array, mask: np.ndarray) -> Array:
        if mask.shape != (x.shape[-1], self.features):
            raise ValueError(
                f"MaskedDense: mask of shape {mask.shape} for {x.shape[-1]} inputs and "
                f"{self.features} outputs."
            )
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        dtype = jnp.result_type(x, kernel)
        masked = jnp.asarray(kernel, dtype) * jnp.asarray(mask, dtype)
        return x.astype(dtype) @ masked + jnp.asarray(bias, dtype)


class MADE(nn.Module):
    """An autoregressive MLP: ``(..., D)`` inputs to ``(..., D, num_params)`` outputs.

    ``out[..., d, :]`` depends only on ``x[..., j]`` with ``deg(j) < deg(d)`` and on the context;
    see the module docstring for the degrees. The event size ``D`` is the last axis of ``x``.

    Attributes:
      num_params: outputs per input dim (a transformer's raw parameters).
      hidden: widths of the masked hidden layers (may be empty, or narrower than ``D``).
      order: autoregressive order, a permutation of ``range(D)``: ``order[0]`` depends on
        nothing, ``order[-1]`` on all other dims. ``None`` is ``0, 1, ..., D-1``.
      activation: nonlinearity after every hidden layer.
      out_init_zero: zero-initialize the output layer's kernel and bias (outputs 0 at init).
    """

    num_params: int
    hidden: Sequence[int] = (128, 128)
    order: Sequence[int] | None = None
    activation: Callable[[Array], Array] = nn.gelu
    out_init_zero: bool = True

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        if x.ndim < 1:
            raise ValueError(f"MADE: expected inputs of shape (..., D), got shape {x.shape}.")
        if self.num_params < 1:
            raise ValueError(f"MADE: num_params must be >= 1, got {self.num_params}.")
        if any(int(width) < 1 for width in self.hidden):
            raise ValueError(f"MADE: hidden widths must be >= 1, got {tuple(self.hidden)}.")
        dim = x.shape[-1]
        context_dim = 0
        if context is not None:
            context = jnp.broadcast_to(context, (*x.shape[:-1], context.shape[-1]))
            context_dim = context.shape[-1]
            x_in = jnp.concatenate([x, context.astype(x.dtype)], axis=-1)
        else:
            x_in = x
        masks = made_masks(dim, self.hidden, self.num_params, context_dim, self.order)
        h = x_in
        for i, (width, mask) in enumerate(zip(self.hidden, masks[:-1], strict=True)):
            h = self.activation(MaskedDense(width, name=f"hidden_{i}")(h, mask))
        last: dict[str, Any] = {}
        if self.out_init_zero:
            last = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)
        out = MaskedDense(dim * self.num_params, name="output", **last)(h, masks[-1])
        return out.reshape(*x.shape[:-1], dim, self.num_params)


def made_event_dim(variables: Any, num_params: int) -> int:
    """The event size ``D`` of an initialized ``MADE``, read from its output bias."""
    return int(variables["params"]["output"]["bias"].shape[0]) // num_params


def made_input_dim(variables: Any) -> int:
    """The input size ``D + context_dim`` of an initialized ``MADE``."""
    layers = variables["params"]
    first = "hidden_0" if "hidden_0" in layers else "output"
    return int(layers[first]["kernel"].shape[0])
