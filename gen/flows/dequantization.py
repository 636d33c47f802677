"""Dequantization of 8-bit images, logit preprocessing, and likelihood bounds in bits/dim.

Conventions. Pixels are integers ``x`` in ``{0, ..., L - 1}^D`` (``L = num_levels``, 256 for 8
bits; ``D = H W C``). A flow is a density ``p_model`` over a *model space*
``y = a (x + u) + b`` with ``u`` in ``[0, 1)^D``: ``gen.data.preprocess`` uses ``a = 1/256,
b = 0`` (``data.scale='unit'``, ``y`` in ``[0, 1)^D``) or ``a = 2/256, b = -1`` (``'symmetric'``).
The dequantized pixels ``v = x + u`` live in ``[0, L)^D`` with density
``p(v) = p_model(a v + b) a^D``, and the discrete model is ``P(x) = int_{[0,1)^D} p(x + u) du``.
For any density ``q(u | x)`` on ``[0, 1)^D``, Jensen's inequality gives the bound

    log P(x) >= E_{u ~ q(.|x)} [ log p_model(a (x + u) + b) + D log a - log q(u | x) ]     (*)

in nats, with equality iff ``q(u | x) = p(x + u) / P(x)``.

- **Uniform dequantization** is ``q = U[0, 1)^D`` (``log q = 0``). The train loop already does
  it (``gen.data.preprocess``: ``y = (x + u) / 256``), and its
  ``Preprocess.bits_per_dim(nll_model, D) = (nll_model - D log a) / (D log 2)`` is exactly
  ``-(*) / (D log 2)`` for one ``u`` per example. ``uniform_dequantizer`` is the same ``q`` here.
- **Variational dequantization** (Ho et al. 2019, Flow++): ``q(u | x)`` is a conditional flow
  (``variational_dequantizer``), trained jointly with the model by maximizing ``(*)``.
- **Bits/dim** are always reported for the discrete 8-bit pixels, i.e. for densities on
  ``[0, 256)^D``: ``bpd = -log P(x) / (D log 2)``. The ``D log a`` term converts the model-space
  density into it (``a = 1/256``: ``-D log 256`` nats, 8 bits per dim; a model uniform on
  ``[0, 1)^D`` has exactly 8 bits/dim). ``log_likelihood_bound`` already includes it, so
  ``bits_per_dim(log_likelihood_bound(...), D)`` needs no further conversion.
- **Logit preprocessing** (``logit_preprocess``, RealNVP) is a bijector inside the flow, so its
  log-det is counted: ``p_model`` stays a density over ``y``, never over ``logit(y)``.

Example::

    >>> import functools, jax, jax.numpy as jnp
    >>> from gen import flows
    >>> flow = flows.glow((4, 4, 1), num_scales=1, num_steps=2, hidden_channels=8,
    ...                   num_groups=None)
    >>> x = jnp.zeros((4, 4, 1)) + 7.0                              # integer pixels
    >>> params = flow.init(jax.random.key(0), x / 256)
    >>> deq = flows.uniform_dequantizer()
    >>> lp = functools.partial(flow.log_prob, params)
    >>> ll = flows.log_likelihood_bound(lp, deq, (), x, jax.random.key(1))
    >>> bpd = flows.bits_per_dim(ll, x.size)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array, Bijector, Params, _no_params, chain, check_event
from gen.flows.distributions import logistic, standard_normal
from gen.flows.elementwise import affine, sigmoid
from gen.flows.flow import make_flow
from gen.flows.image import alternate, checkerboard_coupling


def logit_preprocess(
    alpha: float = 0.05,
    low: float = 0.0,
    high: float = 1.0,
    eps: float = 1e-6,
    event_shape: int | Sequence[int] | None = None,
) -> Bijector:
    """RealNVP's logit preprocessing as a bijector, so its log-det is counted in the likelihood.

    ``inverse`` (data ``y`` in ``[low, high]`` -> latent):
    ``p = alpha + (1 - 2 alpha) (y - low) / (high - low)``, ``t = log p - log(1 - p)``, with

        log|dt/dy| = sum_i [ -log p_i - log(1 - p_i) ] + D (log(1 - 2 alpha) - log(high - low)).

    ``forward`` (latent -> data) is ``y = low + (high - low) (sigmoid(t) - alpha) / (1 - 2 alpha)``.
    ``alpha`` (RealNVP: 0.05) keeps ``p`` away from 0 and 1. ``p`` is clipped to
    ``[eps, 1 - eps]`` before any arithmetic: data outside ``[low, high]`` by more than
    ``alpha (high - low) / (1 - 2 alpha)`` maps to a constant with a finite log-det, never NaN.
    For ``gen.data.preprocess`` inputs use ``low, high = 0, 1`` (``scale='unit'``) or ``-1, 1``
    (``'symmetric'``). No params; ``context`` is ignored.
    """
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"logit_preprocess: alpha must be in [0, 0.5), got {alpha}.")
    if not high > low:
        raise ValueError(f"logit_preprocess: need high > low, got low={low}, high={high}.")
    shape = None if event_shape is None else (
        (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    )
    a, width = float(alpha), float(high - low)
    log_const = math.log1p(-2.0 * a) - math.log(width)  # log dp/dy

    def check(x: Array) -> Array:
        x = jnp.asarray(x)
        if shape is not None:
            check_event(x, shape, "logit_preprocess")
        return x

    def forward(params: Params, t: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        t = check(t)
        y = low + width * (jax.nn.sigmoid(t) - a) / (1.0 - 2.0 * a)
        ldj = jnp.sum(jax.nn.log_sigmoid(t) + jax.nn.log_sigmoid(-t)) - t.size * log_const
        return y, ldj

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        y = check(y)
        p = jnp.clip(a + (1.0 - 2.0 * a) * (y - low) / width, eps, 1.0 - eps)
        log_p, log_1mp = jnp.log(p), jnp.log1p(-p)
        return log_p - log_1mp, y.size * log_const - jnp.sum(log_p + log_1mp)

    def init(key: Array, x: Array, context: Array | None = None) -> tuple[()]:
        check(x)
        return _no_params(key, x, context)

    return Bijector(init, forward, inverse)


class Dequantizer(NamedTuple):
    """A dequantization distribution ``q(u | x)`` on ``[0, 1)^D``, as pure functions.

    Attributes:
      init: ``init(key, x) -> params``; ``x`` one integer-valued image.
      sample_and_log_prob: ``(params, key, x) -> (u, log q(u | x))``, reparameterized in
        ``params`` (gradients flow through ``u``).
      log_prob: ``(params, u, x) -> log q(u | x)``.
    """

    init: Callable[..., Params]
    sample_and_log_prob: Callable[..., tuple[Array, Array]]
    log_prob: Callable[..., Array]


def uniform_dequantizer() -> Dequantizer:
    """``q(u | x) = U[0, 1)^D``: ``log q = 0``, the dequantization of ``gen.data.preprocess``.
    No params."""

    def init(key: Array, x: Array) -> tuple[()]:
        del key, x
        return ()

    def sample_and_log_prob(params: Params, key: Array, x: Array) -> tuple[Array, Array]:
        del params
        x = jnp.asarray(x)
        dtype = jnp.result_type(x.dtype, jnp.float32)
        return jax.random.uniform(key, x.shape, dtype), jnp.zeros((), dtype)

    def log_prob(params: Params, u: Array, x: Array) -> Array:
        del params, x
        inside = jnp.all((u >= 0) & (u < 1))
        return jnp.where(inside, 0.0, -jnp.inf)

    return Dequantizer(init, sample_and_log_prob, log_prob)


def variational_dequantizer(
    shape: Sequence[int],
    num_steps: int = 4,
    hidden_channels: int = 32,
    num_blocks: int = 1,
    num_levels: int = 256,
    *,
    transformer: str = "affine",
    num_groups: int | None = 8,
    base: str = "logistic",
) -> Dequantizer:
    """Flow++'s variational dequantization ``q(u | x)`` (Ho et al. 2019) for images ``shape``.

    ``u = sigmoid(f(e; x))`` with ``e`` from the base and ``f`` a conditional flow: an
    elementwise affine map, then ``num_steps`` checkerboard couplings of alternating parity whose
    ConvResNet conditioners see the image ``x`` (as the context map ``2 x / (L - 1) - 1``)::

        log q(u | x) = log p_base(e) - log|det df/de| - log|det dsigmoid/dv|

    With the default ``base='logistic'`` and every layer starting as the identity,
    ``sigmoid(e)`` is uniform: ``q`` starts *exactly* as uniform dequantization, and training
    can only tighten the bound from there. ``base='normal'`` is the Flow++ choice (a Gaussian).
    Flow++ conditions through a deeper shared feature network; this is the minimal version.
    """
    shape3 = tuple(int(d) for d in shape)
    if len(shape3) != 3:
        raise ValueError(f"variational_dequantizer: shape must be (H, W, C), got {shape3}.")
    if base not in ("logistic", "normal"):
        raise ValueError(f"variational_dequantizer: base must be 'logistic' or 'normal', got "
                         f"{base!r}.")
    c = shape3[-1]

    def coupling(parity: int) -> Bijector:
        return checkerboard_coupling(
            parity, transformer, hidden_channels, num_blocks, context_dim=c, num_groups=num_groups
        )

    bijector = chain(affine(), alternate(coupling, num_steps), sigmoid())
    flow = make_flow((logistic if base == "logistic" else standard_normal)(shape3), bijector)

    def features(x: Array) -> Array:
        check_event(x, shape3, "variational_dequantizer")
        x = jnp.asarray(x)
        return 2.0 * x.astype(jnp.result_type(x.dtype, jnp.float32)) / (num_levels - 1) - 1.0

    def init(key: Array, x: Array) -> Params:
        ctx = features(x)
        return flow.init(key, jnp.full(shape3, 0.5, ctx.dtype), ctx)

    def sample_and_log_prob(params: Params, key: Array, x: Array) -> tuple[Array, Array]:
        return flow.sample_and_log_prob(params, key, features(x))

    def log_prob(params: Params, u: Array, x: Array) -> Array:
        return flow.log_prob(params, u, features(x))

    return Dequantizer(init, sample_and_log_prob, log_prob)


def log_likelihood_bound(
    model_log_prob: Callable[[Array], Array],
    dequantizer: Dequantizer,
    dequantizer_params: Params,
    x: Array,
    key: Array,
    *,
    num_levels: int = 256,
    scale: float | None = None,
    shift: float = 0.0,
    num_samples: int = 1,
) -> Array:
    """A lower bound on ``log P(x)`` in nats for one image ``x`` of integer pixels, the bound
    ``(*)`` of the module docstring.

    Args:
      model_log_prob: ``y -> log p_model(y)`` for one event in model space, e.g.
        ``functools.partial(flow.log_prob, params)``.
      dequantizer: ``q(u | x)``, e.g. ``uniform_dequantizer()`` or ``variational_dequantizer``.
      dequantizer_params: its params.
      x: one event of integer pixels in ``{0, ..., num_levels - 1}`` (any dtype).
      key: PRNG key for ``u``.
      num_levels: ``L``, 256 for 8-bit pixels.
      scale, shift: the model space ``y = scale (x + u) + shift``; ``scale`` defaults to
        ``1 / num_levels`` (``gen.data.preprocess``'s ``'unit'``; ``'symmetric'`` is
        ``scale=2/256, shift=-1``).
      num_samples: ``K`` draws of ``u``. ``K = 1`` is the variational bound (the training
        objective); ``K > 1`` returns the importance-weighted bound
        ``log (1/K) sum_k exp(w_k)``, tighter and still a lower bound in expectation (use it for
        evaluation, as Flow++ does).

    Returns:
      A scalar; ``jax.vmap`` over a batch. ``bits_per_dim(bound, x.size)`` converts it.
    """
    if num_samples < 1:
        raise ValueError(f"log_likelihood_bound: num_samples must be >= 1, got {num_samples}.")
    x = jnp.asarray(x)
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    a = 1.0 / num_levels if scale is None else float(scale)
    log_a = x.size * math.log(a)

    def one(k: Array) -> Array:
        u, log_q = dequantizer.sample_and_log_prob(dequantizer_params, k, x)
        return model_log_prob(a * (x + u) + shift) + log_a - log_q

    if num_samples == 1:
        return one(key)
    w = jax.vmap(one)(jax.random.split(key, num_samples))
    return jax.nn.logsumexp(w) - math.log(num_samples)


def bits_per_dim(log_likelihood: Array, num_dims: int) -> Array:
    """``-log P(x) / (D log 2)``: bits per dimension from a log-likelihood (or a bound on it) of
    the discrete pixels in nats, as ``log_likelihood_bound`` returns."""
    return -jnp.asarray(log_likelihood) / (num_dims * math.log(2.0))
