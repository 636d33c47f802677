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
- :func:`ffjord`: blocks over a standard normal base, chained or in the paper's multiscale
  architecture (``num_scales``), with optional logit preprocessing, as an :class:`FFJORD`
  (``log_prob(params, x, key=None)``, ``sample``) and as a plain :class:`gen.flows.Flow`
  (exact traces). The integration time ``T`` is fixed or learned (``learn_time``).

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

import functools
import itertools
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
from gen.flows.image import multi_scale

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
      init: ``init(key, x, context=None) -> params``: ``{"net": the network's params}``, and
        ``"sqrt_time"`` (``sqrt(T)``) when the integration time is learned.
      forward: ``forward(params, z, context=None, *, key=None) -> (x, log|det dx/dz|)``,
        solving from ``T`` to 0.
      inverse: ``inverse(params, x, context=None, *, key=None) -> (z, log|det dz/dx|)``,
        solving from 0 to ``T``. ``key=None``: exact trace; a key: one Rademacher probe.
      generate: ``generate(params, z) -> x``: ``forward`` without the log-det (no trace is
        computed), for sampling.
    """

    init: Callable[..., Params]
    forward: Callable[..., tuple[Array, Array]]
    inverse: Callable[..., tuple[Array, Array]]
    generate: Callable[..., Array]

    @property
    def bijector(self) -> Bijector:
        return Bijector(self.init, self.forward, self.inverse)


def cnf(
    net: nn.Module,
    *,
    time: float = 1.0,
    learn_time: bool = False,
    solver: str = "dopri5",
    num_steps: int = 20,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 1000,
    adjoint: str = "recursive",
) -> CNF:
    """A CNF block ``dz/dt = net(t, z)`` on ``[0, T]`` (see the module docstring).

    ``T = time``, or with ``learn_time`` a parameter ``T = sqrt_time^2`` initialized at
    ``time`` (FFJORD's ``train_T``). Either way the solve runs in ``s = t / T`` on ``[0, 1]``:
    ``dz/ds = T net(T s, z)``, whose divergence is ``T tr(d net/dz)``, so ``T`` is an ordinary
    parameter of the vector field (differentiable under both adjoints).

    ``solver`` is one of ``gen.diffusion.ode.METHODS``: adaptive (``rtol``, ``atol``,
    ``max_steps``, ``adjoint``) or fixed-step (``num_steps``, over ``[0, 1]`` in ``s``).
    ``context`` is not supported (an unconditional CNF); passing one raises.
    """
    if solver not in ode.METHODS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of {', '.join(ode.METHODS)}.")
    if adjoint not in ode.ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; choose one of {', '.join(ode.ADJOINTS)}.")
    if not time > 0:
        raise ValueError(f"cnf: time must be > 0, got {time}.")
    options = dict(method=solver, num_steps=num_steps, rtol=rtol, atol=atol,
                   max_steps=max_steps, adjoint=adjoint)

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        _no_context(context)
        x = jnp.asarray(x)
        params = {"net": net.init(key, jnp.zeros((), x.dtype), x)}
        if learn_time:
            params["sqrt_time"] = jnp.sqrt(jnp.asarray(time, x.dtype))
        return params

    def field(params: Params) -> Callable[[Array, Array], Array]:
        """``(s, z) -> T net(T s, z)``: the velocity in ``s = t / T``."""
        end = params["sqrt_time"] ** 2 if learn_time else time
        return lambda s, z: end * net.apply(params["net"], end * s, z)

    def integrate(params: Params, y: Array, start: float, stop: float,
                  key: Array | None) -> tuple[Array, Array]:
        y = jnp.asarray(y)
        dim = y.size
        if key is None:
            probes, average = jnp.eye(dim, dtype=y.dtype), False
        else:
            probes, average = jax.random.rademacher(key, (1, dim), y.dtype), True
        vel_div = velocity_and_divergence(field(params), probes, average)

        def augmented(s: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
            u, div = vel_div(s, state[0])
            return u, div.astype(state[1].dtype)

        return ode.solve(augmented, (y, jnp.zeros((), y.dtype)), start, stop, **options)

    def forward(params: Params, z: Array, context: Array | None = None, *,
                key: Array | None = None) -> tuple[Array, Array]:
        _no_context(context)
        return integrate(params, z, 1.0, 0.0, key)

    def inverse(params: Params, x: Array, context: Array | None = None, *,
                key: Array | None = None) -> tuple[Array, Array]:
        _no_context(context)
        return integrate(params, x, 0.0, 1.0, key)

    def generate(params: Params, z: Array) -> Array:
        return ode.solve(field(params), jnp.asarray(z), 1.0, 0.0, **options)

    return CNF(init, forward, inverse, generate)


def _no_context(context: Array | None) -> None:
    if context is not None:
        raise ValueError("ffjord: a context is not supported (the CNF is unconditional).")


class FFJORD(NamedTuple):
    """An FFJORD model: CNF blocks (after an optional logit transform) over ``N(0, I)``.

    Attributes:
      init: ``init(key, x) -> params`` (nested tuples following :func:`gen.flows.chain` and
        :func:`gen.flows.image.multi_scale`, one :class:`CNF` params dict per block).
      log_prob: ``log_prob(params, x, key=None) -> scalar`` for one event: exact traces, or with
        ``key`` Hutchinson's unbiased estimate (one probe per block).
      sample: ``sample(params, key) -> x`` (no trace is computed).
      flow: the same model as a :class:`gen.flows.Flow` with exact traces, for composing with
        the rest of ``gen.flows``; its params (``flow.init``) are ``{"base": (), "bijector": b}``
        with ``b`` these params, or ``(these params, ())`` after a logit transform.
    """

    init: Callable[..., Params]
    log_prob: Callable[..., Array]
    sample: Callable[..., Array]
    flow: Flow


def ffjord(
    event_shape: int | Sequence[int],
    *,
    num_blocks: int = 1,
    num_scales: int = 1,
    hidden: Sequence[int] = (64, 64, 64),
    activation: str | None = None,
    logit: float | None = None,
    **cnf_kwargs: Any,
) -> FFJORD:
    """FFJORD on events of ``event_shape``: stacks of ``num_blocks`` CNF blocks
    (``ConcatSquashMLP`` of ``hidden`` for vectors, ``ConcatConvNet`` with ``hidden`` channels
    for ``(H, W, C)`` images), preceded for images in [0, 1] by RealNVP's logit transform with
    ``logit = alpha`` (FFJORD: 1e-6) when given. ``cnf_kwargs`` go to :func:`cnf` (``time``,
    ``learn_time``, ``solver``, ``rtol``, ``atol``, ...).

    ``num_scales = 1``: one stack. ``num_scales = L > 1`` (images): the paper's multiscale
    architecture (its ``ODENVP``) on :func:`gen.flows.image.multi_scale`. Data -> latent, each
    scale but the last runs a stack, squeezes ``(h, w, c) -> (h/2, w/2, 4c)``, runs a second
    stack and factors out the last ``2c`` channels to the base; the last scale runs one stack,
    without a squeeze. FFJORD uses as many scales as halvings keep ``H, W >= 4`` (MNIST 3,
    CIFAR-10 4), with ``num_blocks = 2``.

    ``log p(x) = log N(z; 0, I) + log|det dy/dx| + sum_b int_0^T tr(df_b/dz) dt``, with ``y``
    the logit-transformed event and ``z`` the latent. Hutchinson's probes are drawn per block,
    from ``fold_in(key, b)``.
    """
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"ffjord: events must be (D,) vectors or (H, W, C) images, got {shape}.")
    if num_blocks < 1:
        raise ValueError(f"ffjord: num_blocks must be >= 1, got {num_blocks}.")
    if num_scales < 1 or (num_scales > 1 and len(shape) != 3):
        raise ValueError(f"ffjord: num_scales must be 1 for vectors and >= 1 for images, got "
                         f"{num_scales} for events of shape {shape}.")
    if len(shape) == 1:
        net = ConcatSquashMLP(tuple(hidden), activation or "tanh")
    else:
        net = ConcatConvNet(tuple(hidden), activation or "softplus")
    block = cnf(net, **cnf_kwargs)
    pre = None if logit is None else logit_preprocess(logit, event_shape=shape)
    base = standard_normal(shape)

    def body(mode: str, key: Array | None = None) -> Bijector:
        """The blocks composed, each as a bijector: ``"exact"`` / ``"hutchinson"`` (block b's
        probe from ``fold_in(key, b)``) log-dets, ``"generate"`` (a forward without the
        log-det, which reads 0; the inverse is exact) or
        ``"shapes"`` (the identity: for ``init``, since a CNF keeps its event's shape and its
        net's init reads only shapes). The structure, hence the params, is the same for all."""
        count = itertools.count()

        def one() -> Bijector:
            if mode == "shapes":
                return Bijector(block.init, _identity, _identity)
            if mode == "generate":
                return Bijector(block.init, lambda p, z, c=None: (block.generate(p, z), 0.0),
                                block.inverse)
            k = None if mode == "exact" else jax.random.fold_in(key, next(count))
            return Bijector(block.init, functools.partial(block.forward, key=k),
                            functools.partial(block.inverse, key=k))

        def stack(_: Any = None) -> Bijector:
            return chain(*[one() for _ in range(num_blocks)])

        if num_scales == 1:
            return stack()
        return multi_scale(shape, num_scales, stack, pre_squeeze=stack, final=stack)

    shapes_body = body("shapes")

    def init(key: Array, x: Array) -> Params:
        x = jnp.asarray(x)
        if x.shape != shape:
            raise ValueError(f"ffjord: expected one event of shape {shape}, got {x.shape}.")
        return shapes_body.init(key, x)

    def log_prob(params: Params, x: Array, key: Array | None = None) -> Array:
        total = jnp.zeros((), jnp.asarray(x).dtype)
        if pre is not None:
            x, ldj = pre.inverse((), x)
            total = total + ldj
        z, ldj = body("exact" if key is None else "hutchinson", key).inverse(params, x)
        return base.log_prob((), z) + total + ldj

    def sample(params: Params, key: Array) -> Array:
        x, _ = body("generate").forward(params, base.sample((), key))
        return x if pre is None else pre.forward((), x)[0]

    exact = body("exact")
    latent_to_data = exact if pre is None else chain(exact, pre)

    def flow_init(key: Array, x: Array, context: Array | None = None) -> Params:
        _no_context(context)  # chain's init would run every block's exact solve: not needed
        return init(key, x) if pre is None else (init(key, x), ())

    flow = make_flow(base, Bijector(flow_init, latent_to_data.forward, latent_to_data.inverse))
    return FFJORD(init, log_prob, sample, flow)


def _identity(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
    return x, jnp.zeros((), jnp.result_type(jnp.asarray(x).dtype, jnp.float32))
