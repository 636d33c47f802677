"""Analytic FLOP counts of JAX functions, read off their jaxpr, and of the UNet's training step.

XLA's cost analysis depends on the backend: on GPU it omits the convolutions that it hands to
cuDNN as custom calls (for the CIFAR-10 UNet's training step it reports about a tenth of the
FLOPs). This counter traces the function with ``jax.make_jaxpr`` and sums the FLOPs of every
``conv_general_dilated`` and ``dot_general`` from their shapes, so it is exact, the same on every
backend, and works for any model, including its backward pass (trace ``jax.grad`` of the loss:
the transposed convolutions and matmuls are equations of that jaxpr too).

Conventions (one multiply-add = 2 FLOPs):

- ``dot_general``: ``2 * prod(output shape) * prod(contracted sizes)``; a dense layer
  ``(B, C_in) @ (C_in, C_out)`` is ``2 B C_in C_out``; attention's ``Q K^T`` and ``A V`` are
  ``2 N^2 C`` each per example and head-summed.
- ``conv_general_dilated``: ``2 * N * C_out * (C_in / groups) * prod_d taps_d``, where
  ``taps_d`` counts the (output position, kernel tap) pairs of spatial dimension ``d`` that read
  a real input element: not padding, and not a hole of an input dilation (the zeros a transposed
  convolution inserts). Without padding this is the textbook
  ``2 H_out W_out K_h K_w C_in C_out`` per image; with "SAME" padding it is a little less (the
  border taps that read zeros are not counted). This is the count XLA's ``HloCostAnalysis`` makes.
- Sub-jaxprs (``pjit``, ``remat``, ``custom_jvp_call``, ``custom_vjp_call``, ...) are counted
  where they are called; a ``scan`` body is multiplied by its ``length``; a ``cond`` counts its
  costliest branch (an upper bound); a ``while_loop`` whose body does conv or dot work has an
  unknown trip count, and is an error.
- Equations whose outputs are never used are not counted (XLA removes them too).
- ``elementwise`` (approximate, not part of ``matmul``): 1 FLOP per output element of each
  arithmetic elementwise op (add, mul, max, select, compare, convert, ...) and per input element
  of each reduction; ``transcendental``: elements of exp, log, tanh, logistic, sqrt, ... (XLA
  reports these apart from its FLOPs too); ``logistic`` also adds 3 elementwise FLOPs per
  element, as ``1 / (1 + exp(-x))``. Data movement (reshape, transpose, concatenate,
  broadcast, gather) costs nothing.

The training step of a network is forward + backward. For each matmul or conv, the backward pass
makes two products of the forward's size (the gradients of the input and of the weight), so a
training step is close to 3x the forward's ``matmul`` FLOPs; it is a little less because no
gradient flows into the data (the first conv has no input gradient). Tracing the real
``value_and_grad`` counts this exactly.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.nn.flops import count_flops
    >>> count_flops(jnp.matmul, jnp.ones((8, 16)), jnp.ones((16, 4))).matmul  # 2 * 8 * 16 * 4
    1024
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

__all__ = ["Flops", "UNetFlops", "count_flops", "jaxpr_flops", "unet_flops"]

# 1 FLOP per output element.
_ELEMENTWISE = frozenset({
    "add", "add_any", "sub", "mul", "div", "rem", "max", "min", "neg", "abs", "sign", "floor",
    "ceil", "round", "square", "integer_pow", "select_n", "clamp", "eq", "ne", "lt", "le", "gt",
    "ge", "and", "or", "not", "xor", "convert_element_type", "nextafter", "is_finite",
})
# 1 FLOP per input element.
_REDUCTIONS = frozenset({
    "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
    "argmax", "argmin", "cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp",
})
# Counted apart, as XLA does: 1 per output element.
_TRANSCENDENTAL = frozenset({
    "exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "sqrt", "rsqrt", "cbrt", "pow",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh",
    "atanh", "erf", "erfc", "erf_inv", "lgamma", "digamma", "igamma", "igammac", "bessel_i0e",
    "bessel_i1e",
})


class Flops(NamedTuple):
    """FLOP counts of one call (the whole batch, not per example).

    Attributes:
      matmul: exact FLOPs of ``conv_general_dilated`` and ``dot_general`` (2 per multiply-add).
      elementwise: approximate FLOPs of elementwise ops and reductions (1 per element).
      transcendental: elements of transcendental ops (exp, log, tanh, ...), not in the FLOPs.
    """

    matmul: int = 0
    elementwise: int = 0
    transcendental: int = 0

    @property
    def total(self) -> int:
        """``matmul + elementwise``: what XLA's cost analysis calls ``flops``."""
        return self.matmul + self.elementwise

    def __add__(self, other: Any) -> Flops:
        if not isinstance(other, Flops):
            return NotImplemented
        return Flops(*(a + b for a, b in zip(self, other, strict=True)))

    def __mul__(self, n: Any) -> Flops:
        if not isinstance(n, int):
            return NotImplemented
        return Flops(*(a * n for a in self))

    __rmul__ = __mul__


def _size(var: Any) -> int:
    return math.prod(var.aval.shape)


def _dot_flops(eqn: jcore.JaxprEqn) -> int:
    """``2 * prod(out) * prod(contracted)``."""
    lhs = eqn.invars[0].aval.shape
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    return 2 * _size(eqn.outvars[0]) * math.prod(lhs[d] for d in lhs_contract)


def _valid_taps(
    in_size: int, k_size: int, out_size: int, stride: int, pad_lo: int, lhs_dil: int, rhs_dil: int
) -> int:
    """Pairs (output position o, kernel tap k) of one spatial dimension whose input position
    ``o * stride - pad_lo + k * rhs_dil`` (in the lhs-dilated input) is a real input element."""
    pos = (np.arange(out_size)[:, None] * stride - pad_lo + np.arange(k_size)[None, :] * rhs_dil)
    real = (pos >= 0) & (pos <= (in_size - 1) * lhs_dil) & (pos % lhs_dil == 0)
    return int(real.sum())


def _conv_flops(eqn: jcore.JaxprEqn) -> int:
    """``2 * (N / batch_groups) * C_out * (C_in / feature_groups) * prod_d taps_d``."""
    p = eqn.params
    lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
    out = eqn.outvars[0].aval.shape
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    taps = 1
    for d in range(len(lhs_spec) - 2):
        taps *= _valid_taps(
            lhs[lhs_spec[2 + d]], rhs[rhs_spec[2 + d]], out[out_spec[2 + d]],
            p["window_strides"][d], p["padding"][d][0], p["lhs_dilation"][d],
            p["rhs_dilation"][d],
        )
    batch = lhs[lhs_spec[0]] // p["batch_group_count"]
    c_in = lhs[lhs_spec[1]] // p["feature_group_count"]
    return 2 * batch * out[out_spec[1]] * c_in * taps


def _subjaxprs(params: Mapping[str, Any]) -> Iterator[jcore.Jaxpr]:
    for value in params.values():
        for v in value if isinstance(value, tuple | list) else (value,):
            if isinstance(v, jcore.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jcore.Jaxpr):
                yield v


def _live(jaxpr: jcore.Jaxpr) -> list[jcore.JaxprEqn]:
    """The equations an output depends on (or that have effects), in order."""
    used = {v for v in jaxpr.outvars if isinstance(v, jcore.Var)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in used for v in eqn.outvars):
            live.append(eqn)
            used.update(v for v in eqn.invars if isinstance(v, jcore.Var))
    return live[::-1]


def jaxpr_flops(jaxpr: jcore.Jaxpr | jcore.ClosedJaxpr) -> Flops:
    """FLOPs of a jaxpr (see the module docstring for the conventions)."""
    if isinstance(jaxpr, jcore.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    if not isinstance(jaxpr, jcore.Jaxpr):
        raise TypeError(f"jaxpr_flops: expected a Jaxpr or ClosedJaxpr, got {type(jaxpr)}.")
    total = Flops()
    for eqn in _live(jaxpr):
        name = eqn.primitive.name
        if name == "dot_general":
            total += Flops(matmul=_dot_flops(eqn))
        elif name == "conv_general_dilated":
            total += Flops(matmul=_conv_flops(eqn))
        elif name in _ELEMENTWISE:
            total += Flops(elementwise=sum(_size(v) for v in eqn.outvars))
        elif name in _REDUCTIONS:
            total += Flops(elementwise=_size(eqn.invars[0]))
        elif name in _TRANSCENDENTAL:
            n = sum(_size(v) for v in eqn.outvars)
            # logistic as 1 / (1 + exp(-x)): 3 FLOPs and one exp, as XLA expands it.
            total += Flops(elementwise=3 * n if name == "logistic" else 0, transcendental=n)
        elif name == "cond":
            total += max((jaxpr_flops(b) for b in eqn.params["branches"]), key=lambda f: f.total)
        elif name == "while":
            body = jaxpr_flops(eqn.params["body_jaxpr"])
            if body.matmul:
                raise ValueError(
                    "jaxpr_flops: a while_loop does conv or dot work in its body "
                    f"({body.matmul} FLOPs per iteration), but its trip count is not known when "
                    "tracing; use lax.scan or lax.fori_loop with static bounds."
                )
            total += body + jaxpr_flops(eqn.params["cond_jaxpr"])
        else:
            inner = sum((jaxpr_flops(j) for j in _subjaxprs(eqn.params)), Flops())
            if name == "scan":
                inner = inner * int(eqn.params["length"])
            total += inner
    return total


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Flops:
    """FLOPs of ``fn(*args, **kwargs)``, from the jaxpr that ``jax.make_jaxpr`` traces.

    ``args`` may be arrays or ``jax.ShapeDtypeStruct``s (nothing is computed); ``kwargs`` are
    closed over, as static values. To count a training step, pass the step itself, or
    ``jax.value_and_grad(loss)``.
    """
    return jaxpr_flops(jax.make_jaxpr(functools.partial(fn, **kwargs))(*args))


class UNetFlops(NamedTuple):
    """FLOPs of a UNet at one batch size (whole batch; divide by ``batch`` for per image).

    Attributes:
      forward: the forward pass ``apply(params, x, t)``.
      train_step: forward and backward of the eps-MSE loss (``jax.value_and_grad`` with respect
        to the params, dropout on); the optimizer's update is elementwise and not included.
      batch: the batch size counted.
    """

    forward: Flops
    train_step: Flops
    batch: int


def unet_flops(
    config_or_module: Mapping[str, Any] | Any, image_shape: Sequence[int], batch: int = 1
) -> UNetFlops:
    """FLOPs of a ``gen.nn.UNet``'s forward pass and training step, traced (nothing is run).

    Args:
      config_or_module: ``UNet`` keyword arguments (e.g. ``cifar10_config()``) or a ``UNet``.
      image_shape: ``(H, W, C)`` of one image.
      batch: the batch size; the counts are for the whole batch and are linear in it.

    Example::

        >>> from gen.nn import cifar10_config
        >>> f = unet_flops(cifar10_config(), (32, 32, 3), batch=1)
        >>> round(f.train_step.matmul / f.forward.matmul, 2)
        3.0
    """
    from gen.nn.unet import UNet

    if isinstance(config_or_module, UNet):
        net = config_or_module
    elif isinstance(config_or_module, Mapping):
        net = UNet(**config_or_module)
    else:
        raise TypeError(
            "unet_flops: expected a gen.nn.UNet or a mapping of UNet keyword arguments, got "
            f"{type(config_or_module).__name__}."
        )
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"unet_flops: image_shape must be (H, W, C), got {tuple(image_shape)}.")
    if batch < 1:
        raise ValueError(f"unet_flops: batch must be >= 1, got {batch}.")

    x = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
    t = jax.ShapeDtypeStruct((batch,), jnp.float32)
    labels = None if net.num_classes is None else jnp.zeros((batch,), jnp.int32)
    key = jax.random.key(0)
    params = jax.eval_shape(lambda x, t: net.init(key, x, t, labels), x, t)

    def loss(params: Any, x: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
        pred = net.apply(params, x, t, labels, train=True, rngs={"dropout": key})
        return jnp.mean((pred - eps) ** 2)

    forward = count_flops(lambda p, x, t: net.apply(p, x, t, labels), params, x, t)
    train_step = count_flops(jax.value_and_grad(loss), params, x, t, x)
    return UNetFlops(forward, train_step, batch)
