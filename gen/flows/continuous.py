"""Continuous normalizing flows (FFJORD, Grathwohl et al. 2019), solved with diffrax.

A CNF block moves an event along ``dz/dt = f(z, t; theta)`` for ``t`` in ``[0, T]``, **data at
t = 0 and latent at t = T** (as in ``gen.diffusion.ode``). By the instantaneous change of
variables, ``d/dt log p_t(z_t) = -tr(df/dz)``, so for ``z_T = phi(x)``

    ``log|det dz_T/dx| = int_0^T tr(df/dz(z_t, t)) dt``,   ``log p(x) = log p_base(z_T) + that``.

The trace is exact (one forward-mode pass per dimension) for evaluation, or Hutchinson's
unbiased ``eps^T (df/dz) eps`` with one Rademacher probe per solve for training. Sampling solves
from ``T`` back to 0. Solves are adaptive (``gen.diffusion.ode.adaptive``: dopri5 or tsit5,
reverse mode by diffrax's adjoints) or fixed-step (euler / heun, a ``lax.scan``).

- :class:`ConcatSquashMLP`: the paper's toy network, layers ``(W h + b) sigmoid(a t + c) + d t``.
- :class:`ConcatConvNet`: time-concatenated 3x3 convolutions (the paper's ``ConcatConv2d``)
  for ``(H, W, C)`` events.
- :func:`cnf`: one CNF block as a ``gen.flows`` :class:`Bijector` (``forward`` latent -> data);
  ``forward`` and ``inverse`` take an extra keyword ``key=`` for Hutchinson's trace.
- :func:`ffjord`: blocks chained over a standard normal base, with optional logit
  preprocessing, as an :class:`FFJORD` (``log_prob(params, x, key=None)``, ``sample``) and as a
  plain :class:`gen.flows.Flow` (exact traces).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> model = flows.ffjord((2,), hidden=(16, 16), solver="heun", num_steps=8)
    >>> params = model.init(jax.random.key(0), jnp.zeros(2))
    >>> x = model.sample(params, jax.random.key(1))
    >>> float(model.log_prob(params, x)) < 0
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen.diffusion import ode
from gen.diffusion.ode import velocity_and_divergence
from gen.flows.bijector import Bijector, chain
from gen.flows.dequantization import logit_preprocess
from gen.flows.distributions import standard_normal
from gen.flows.flow import Flow, make_flow

Array = jax.Array
Params = Any

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh, "softplus": jax.nn.softplus, "swish": jax.nn.swish,
}

__all__ = ["CNF", "FFJORD", "ConcatConvNet", "ConcatSquashDense", "ConcatSquashMLP", "cnf",
           "ffjord"]


def _activation(name: str) -> Callable[[Array], Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class ConcatSquashDense(nn.Module):
    """``(W h + b) * sigmoid(a t + c) + d t``: a dense layer gated and shifted by the time."""

    features: int

    @nn.compact
    def __call__(self, t: Array, h: Array) -> Array:
        t = jnp.reshape(t, (1,)).astype(h.dtype)
        gate = jax.nn.sigmoid(nn.Dense(self.features, name="gate")(t))
        shift = nn.Dense(self.features, use_bias=False, name="shift")(t)
        return nn.Dense(self.features, name="linear")(h) * gate + shift


class ConcatSquashMLP(nn.Module):
    """``f(t, z)`` for vector events ``z`` of shape ``(D,)``: concatsquash layers of widths
    ``hidden`` with ``activation`` between them, and a concatsquash output layer of width D."""

    hidden: Sequence[int] = (64, 64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, t: Array, z: Array) -> Array:
        act = _activation(self.activation)
        h = z
        for width in self.hidden:
            h = act(ConcatSquashDense(width)(t, h))
        return ConcatSquashDense(z.shape[-1])(t, h)


class ConcatConvNet(nn.Module):
    """``f(t, z)`` for image events ``(H, W, C)``: 3x3 convolutions of ``hidden_channels``,
    each seeing ``t`` as one extra constant input channel, with ``activation`` between them."""

    hidden_channels: Sequence[int] = (64, 64, 64)
    activation: str = "softplus"

    @nn.compact
    def __call__(self, t: Array, z: Array) -> Array:
        act = _activation(self.activation)

        def with_time(h: Array) -> Array:
            return jnp.concatenate([h, jnp.full((*h.shape[:-1], 1), t, h.dtype)], axis=-1)

        h = z
        for channels in self.hidden_channels:
            h = act(nn.Conv(channels, (3, 3), padding="SAME")(with_time(h)))
        return nn.Conv(z.shape[-1], (3, 3), padding="SAME")(with_time(h))


class CNF(NamedTuple):
    """One CNF block (a :class:`Bijector` with a keyword ``key`` for Hutchinson's trace).

    Attributes:
      init: ``init(key, x, context=None) -> params`` (the network's params).
      forward: ``forward(params, z, context=None, *, key=None) -> (x, log|det dx/dz|)``,
        solving from ``T`` to 0.
      inverse: ``inverse(params, x, context=None, *, key=None) -> (z, log|det dz/dx|)``,
        solving from 0 to ``T``. ``key=None``: exact trace; a key: one Rademacher probe.
    """

    init: Callable[..., Params]
    forward: Callable[..., tuple[Array, Array]]
    inverse: Callable[..., tuple[Array, Array]]

    @property
    def bijector(self) -> Bijector:
        return Bijector(self.init, self.forward, self.inverse)


def cnf(
    net: nn.Module,
    *,
    time: float = 1.0,
    solver: str = "dopri5",
    num_steps: int = 20,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 1000,
    adjoint: str = "recursive",
) -> CNF:
    """A CNF block ``dz/dt = net(t, z)`` on ``[0, time]`` (see the module docstring).

    ``solver`` is one of ``gen.diffusion.ode.METHODS``: adaptive (``rtol``, ``atol``,
    ``max_steps``, ``adjoint``) or fixed-step (``num_steps``). ``context`` is not supported
    (an unconditional CNF); passing one raises.
    """
    if solver not in ode.METHODS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of {', '.join(ode.METHODS)}.")
    if adjoint not in ode.ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; choose one of {', '.join(ode.ADJOINTS)}.")
    if not time > 0:
        raise ValueError(f"cnf: time must be > 0, got {time}.")

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        _no_context(context)
        return net.init(key, jnp.zeros((), jnp.asarray(x).dtype), jnp.asarray(x))

    def integrate(params: Params, y: Array, start: float, end: float,
                  key: Array | None) -> tuple[Array, Array]:
        y = jnp.asarray(y)
        dim = y.size
        if key is None:
            probes, average = jnp.eye(dim, dtype=y.dtype), False
        else:
            probes, average = jax.random.rademacher(key, (1, dim), y.dtype), True
        vel_div = velocity_and_divergence(lambda t, z: net.apply(params, t, z), probes, average)

        def augmented(t: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
            u, div = vel_div(t, state[0])
            return u, div.astype(state[1].dtype)

        end_y, integral = ode.solve(
            augmented, (y, jnp.zeros((), y.dtype)), start, end, method=solver,
            num_steps=num_steps, rtol=rtol, atol=atol, max_steps=max_steps, adjoint=adjoint,
        )
        return end_y, integral

    def forward(params: Params, z: Array, context: Array | None = None, *,
                key: Array | None = None) -> tuple[Array, Array]:
        _no_context(context)
        return integrate(params, z, time, 0.0, key)

    def inverse(params: Params, x: Array, context: Array | None = None, *,
                key: Array | None = None) -> tuple[Array, Array]:
        _no_context(context)
        return integrate(params, x, 0.0, time, key)

    return CNF(init, forward, inverse)


def _no_context(context: Array | None) -> None:
    if context is not None:
        raise ValueError("ffjord: a context is not supported (the CNF is unconditional).")


class FFJORD(NamedTuple):
    """An FFJORD model: CNF blocks (after an optional logit transform) over ``N(0, I)``.

    Attributes:
      init: ``init(key, x) -> params`` (a tuple, one entry per block).
      log_prob: ``log_prob(params, x, key=None) -> scalar`` for one event: exact traces, or with
        ``key`` Hutchinson's unbiased estimate (one probe per block).
      sample: ``sample(params, key) -> x``.
      flow: the same model as a :class:`gen.flows.Flow` with exact traces, for composing with
        the rest of ``gen.flows`` (its own params, from ``flow.init``).
    """

    init: Callable[..., Params]
    log_prob: Callable[..., Array]
    sample: Callable[..., Array]
    flow: Flow


def ffjord(
    event_shape: int | Sequence[int],
    *,
    num_blocks: int = 1,
    hidden: Sequence[int] = (64, 64, 64),
    activation: str | None = None,
    logit: float | None = None,
    **cnf_kwargs: Any,
) -> FFJORD:
    """FFJORD on events of ``event_shape``: ``num_blocks`` CNF blocks (``ConcatSquashMLP`` of
    ``hidden`` for vectors, ``ConcatConvNet`` with ``hidden`` channels for ``(H, W, C)``
    images: single scale, not the paper's multiscale architecture), preceded for images in
    [0, 1] by RealNVP's logit transform with ``logit = alpha`` (FFJORD: 1e-6) when given.
    ``cnf_kwargs`` go to :func:`cnf` (``time``, ``solver``, ``rtol``, ``atol``, ...).

    ``log p(x) = log N(z; 0, I) + log|det dy/dx| + sum_b int_0^T tr(df_b/dz) dt``, with ``y``
    the logit-transformed event and ``z`` the end of the last block.
    """
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"ffjord: events must be (D,) vectors or (H, W, C) images, got {shape}.")
    if num_blocks < 1:
        raise ValueError(f"ffjord: num_blocks must be >= 1, got {num_blocks}.")
    if len(shape) == 1:
        net = ConcatSquashMLP(tuple(hidden), activation or "tanh")
    else:
        net = ConcatConvNet(tuple(hidden), activation or "softplus")
    block = cnf(net, **cnf_kwargs)
    pre = None if logit is None else logit_preprocess(logit, event_shape=shape)
    base = standard_normal(shape)

    def init(key: Array, x: Array) -> Params:
        x = jnp.asarray(x)
        if x.shape != shape:
            raise ValueError(f"ffjord: expected one event of shape {shape}, got {x.shape}.")
        return tuple(block.init(k, x) for k in jax.random.split(key, num_blocks))

    def log_prob(params: Params, x: Array, key: Array | None = None) -> Array:
        total = jnp.zeros((), jnp.asarray(x).dtype)
        if pre is not None:
            x, ldj = pre.inverse((), x)
            total = total + ldj
        keys = [None] * num_blocks if key is None else list(jax.random.split(key, num_blocks))
        for p, k in zip(params, keys, strict=True):
            x, ldj = block.inverse(p, x, key=k)
            total = total + ldj
        return base.log_prob((), x) + total

    def sample(params: Params, key: Array) -> Array:
        x = base.sample((), key)
        for p in reversed(params):
            x, _ = block.forward(p, x)
        return x if pre is None else pre.forward((), x)[0]

    parts = [block.bijector] * num_blocks + ([] if pre is None else [pre])  # latent -> data
    bijector = chain(*parts) if len(parts) > 1 else parts[0]
    return FFJORD(init, log_prob, sample, make_flow(base, bijector))

