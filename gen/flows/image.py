"""Image bijectors: ActNorm, the invertible 1x1 convolution, squeeze, image couplings and the
multi-scale factor-out architecture of RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal
2018).

Every bijector here acts on ONE image event of shape ``(H, W, C)`` (no batch axis; batches go
through ``jax.vmap``) and returns a scalar log-det. As everywhere in ``gen.flows``, ``forward``
maps latent -> data (sampling) and ``inverse`` maps data -> latent (``log_prob``). The papers
describe their layers in the data -> latent ("encoder") direction; here that is ``inverse``.

Example (one Glow step, and its data-dependent ActNorm init)::

    >>> import jax, jax.numpy as jnp
    >>> from gen import flows
    >>> step = flows.chain(
    ...     flows.channel_coupling(0, "glow", hidden_channels=16, num_groups=None),
    ...     flows.conv1x1(),
    ...     flows.actnorm(),
    ... )
    >>> x = jax.random.uniform(jax.random.key(0), (8, 4, 4, 2))
    >>> params = step.init(jax.random.key(1), x[0])
    >>> params = flows.actnorm_data_init(params, step, x)   # zero mean, unit std per channel
    >>> z, ldj = step.inverse(params, x[0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from gen.flows.bijector import (
    Array,
    Bijector,
    Params,
    _no_params,
    chain,
    check_event,
    invert,
    scan,
)
from gen.flows.coupling import Transformer, get_transformer
from gen.nn.resnet import ConvResNet

Shape3 = tuple[int, int, int]
Conditioner = Callable[[int], nn.Module]
"""``make(out_channels) -> Linen module`` called as ``net(x, context)``, ``x`` of shape
``(H, W, C_in)`` and ``context`` a vector ``(D,)``, a map ``(H, W, D)`` or ``None``."""


def _float(x: Array) -> Array:
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, jnp.float32))


def _zero(x: Array) -> Array:
    return jnp.zeros((), jnp.result_type(x.dtype, jnp.float32))


def _check_image(x: Array, name: str, channels: int | None = None) -> None:
    """``ValueError`` naming both shapes unless ``x`` is one ``(H, W, channels)`` image."""
    shape = tuple(jnp.shape(x))
    if len(shape) != 3 or (channels is not None and shape[-1] != channels):
        expected = "(H, W, C)" if channels is None else f"(H, W, {channels})"
        raise ValueError(
            f"{name}: expected one event of shape {expected}, got shape {shape}. Image "
            "bijectors act on a single (H, W, C) image; map batches with jax.vmap."
        )


# --------------------------------------------------------------------------------------------
# ActNorm
# --------------------------------------------------------------------------------------------

DATA_INIT_AXIS = "actnorm_data_init"
"""The ``jax.vmap`` axis name over which ``actnorm_data_init`` takes batch statistics."""


class ActNormParams(NamedTuple):
    """ActNorm's params: per-channel ``loc`` and ``log_scale``, shape ``(C,)`` each (stacked with
    a leading axis under ``scan``). A distinct pytree type, so ``actnorm_data_init`` finds every
    ActNorm in any params pytree."""

    loc: Array
    log_scale: Array


class _DataInitParams(NamedTuple):
    """ActNorm params marked for data-dependent init (private; see ``actnorm_data_init``)."""

    loc: Array
    log_scale: Array


def _batch_moments(x: Array, eps: float) -> tuple[Array, Array]:
    """Per-channel mean and ``0.5 log(var + eps)`` over the pixels and the data-init batch."""
    try:
        mean = jax.lax.pmean(jnp.mean(x, axis=(0, 1)), DATA_INIT_AXIS)
        var = jax.lax.pmean(jnp.mean(jnp.square(x - mean), axis=(0, 1)), DATA_INIT_AXIS)
    except NameError as e:  # unbound axis: called outside actnorm_data_init
        raise ValueError(
            "actnorm: data-init params are only valid inside actnorm_data_init."
        ) from e
    return jax.lax.stop_gradient(mean), jax.lax.stop_gradient(0.5 * jnp.log(var + eps))


def _readout(params: _DataInitParams, loc: Array, log_scale: Array) -> Array:
    """Zero in value; its gradient with respect to ``params`` is ``(loc, log_scale)``.

    ``actnorm_data_init`` reads the data-dependent params off this gradient, so they come back
    in the exact slots of the params pytree (stacked under ``scan``), with no hidden state.
    """
    a = jnp.sum(params.loc * loc) + jnp.sum(params.log_scale * log_scale)
    return a - jax.lax.stop_gradient(a)


def actnorm(eps: float = 1e-6) -> Bijector:
    """Activation normalization (Glow): a per-channel affine map.

    ``forward``: ``y = x * exp(log_scale) + loc``; ``inverse``: ``x = (y - loc) * exp(-log_scale)``
    (the data -> latent direction), log-det ``H W sum(log_scale)`` (forward). Params
    ``ActNormParams(loc, log_scale)`` of shape ``(C,)``, zero at ``init`` (the identity), then
    set from data by ``actnorm_data_init`` so that the data -> latent output of every ActNorm has
    zero mean and unit variance per channel on a batch:
    ``loc = mean(y)``, ``log_scale = log(var(y) + eps) / 2``.
    Any spatial size is accepted; the channel count is checked. ``context`` is ignored.
    """

    def init(key: Array, x: Array, context: Array | None = None) -> ActNormParams:
        del key, context
        _check_image(x, "actnorm")
        dtype = jnp.result_type(jnp.asarray(x).dtype, jnp.float32)
        c = jnp.shape(x)[-1]
        return ActNormParams(jnp.zeros((c,), dtype), jnp.zeros((c,), dtype))

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        _check_image(x, "actnorm", params.loc.shape[-1])
        hw = x.shape[0] * x.shape[1]
        if isinstance(params, _DataInitParams):  # normalize this layer's data -> latent output
            mean, half_log_var = _batch_moments(x, eps)
            log_scale = -half_log_var
            loc = -mean * jnp.exp(log_scale)
            y = x * jnp.exp(log_scale) + loc
            return y, hw * jnp.sum(log_scale) + _readout(params, loc, log_scale)
        return x * jnp.exp(params.log_scale) + params.loc, hw * jnp.sum(params.log_scale)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        _check_image(y, "actnorm", params.loc.shape[-1])
        hw = y.shape[0] * y.shape[1]
        if isinstance(params, _DataInitParams):
            loc, log_scale = _batch_moments(y, eps)
            x = (y - loc) * jnp.exp(-log_scale)
            return x, -hw * jnp.sum(log_scale) + _readout(params, loc, log_scale)
        return (y - params.loc) * jnp.exp(-params.log_scale), -hw * jnp.sum(params.log_scale)

    return Bijector(init, forward, inverse)


def actnorm_data_init(
    params: Params, model: Any, x: Array, context: Array | None = None
) -> Params:
    """Data-dependent init of every ActNorm in ``params`` from a batch ``x`` (Glow, Sec. 3.1).

    Runs the data -> latent pass (``inverse``) of ``model`` over the batch once; each ActNorm,
    in the order the pass meets it, sets its params from the batch statistics of its own input
    (over the batch and the pixels), given the already-initialized layers before it. Afterwards
    every ActNorm's output on ``x`` has zero mean and unit variance per channel. All other params
    are returned unchanged. Call it once, right after ``init``::

        params = flow.init(k, batch["x"][0])
        params = actnorm_data_init(params, flow, batch["x"])        # (B, H, W, C) batch

    Args:
      params: params of ``model`` (a ``Flow``'s ``{"base", "bijector"}`` dict, or a bijector's).
      model: a ``Flow`` or a ``Bijector``.
      x: a batch of data events, shape ``(B, *event_shape)``, in the model's input space.
      context: a batch of contexts (leading axis ``B``) for conditional models, else ``None``.

    Works through ``chain``, ``invert``, ``scan`` (each stacked copy gets its own statistics) and
    any bijector that passes its params subtrees through: the ActNorm params are found by their
    pytree type ``ActNormParams`` and the new values are read off a gradient (no hidden state).
    Jitted; the batch should be large enough for stable statistics (Glow used 512 examples).
    """
    if hasattr(model, "bijector") and hasattr(model, "base"):  # a Flow
        sub = actnorm_data_init(params["bijector"], model.bijector, x, context)
        return {**params, "bijector": sub}
    bijector: Bijector = model
    is_actnorm = lambda p: isinstance(p, ActNormParams)
    leaves, treedef = jax.tree.flatten(params, is_leaf=is_actnorm)
    slots = [i for i, leaf in enumerate(leaves) if is_actnorm(leaf)]
    if not slots:
        return params
    x = _float(x)
    ctx_axis = None if context is None else 0

    @jax.jit
    def statistics(leaves: list, x: Array, context: Array | None) -> list:
        def mean_ldj(marked: list) -> Array:
            full = list(leaves)
            for i, m in zip(slots, marked, strict=True):
                full[i] = m
            p = jax.tree.unflatten(treedef, full)
            inv = jax.vmap(bijector.inverse, (None, 0, ctx_axis), axis_name=DATA_INIT_AXIS)
            return jnp.mean(inv(p, x, context)[1])

        marked = [_DataInitParams(*leaves[i]) for i in slots]
        return jax.grad(mean_ldj)(marked)

    new = statistics(leaves, x, context)
    out = list(leaves)
    for i, g in zip(slots, new, strict=True):
        out[i] = ActNormParams(g.loc.astype(leaves[i].loc.dtype),
                               g.log_scale.astype(leaves[i].log_scale.dtype))
    return jax.tree.unflatten(treedef, out)


# --------------------------------------------------------------------------------------------
# Invertible 1x1 convolution and squeeze
# --------------------------------------------------------------------------------------------


def conv1x1(perm: Sequence[int] | np.ndarray | None = None, init_scale: float = 0.01) -> Bijector:
    """The invertible 1x1 convolution of Glow, LU-parameterized: ``y[h, w] = W x[h, w]`` with

        W = P L (U + diag(exp(log_s))),

    ``P`` a fixed channel permutation (``(P v)[i] = v[perm[i]]``; default: reverse the channels),
    ``L`` unit lower triangular, ``U`` strictly upper triangular. log-det
    ``H W sum(log_s)`` exactly. The inverse ``W^-1 = (U + diag(s))^-1 L^-1 P^T`` comes from two
    triangular solves on the ``C x C`` channel matrix (computed once per call, not per pixel),
    then one matmul over the pixels. At init ``log_s = 0`` and the strict triangles are
    ``init_scale`` times standard normal noise, so ``W`` starts near ``P`` (Glow starts at a
    random rotation; a near-permutation keeps ``P`` static and ``det W > 0`` fixed).
    Params ``{"lower", "upper", "log_s"}`` (only the strict triangles are used); ``context`` is
    ignored. Any spatial size is accepted; the channel count is checked.
    """
    given = None if perm is None else np.asarray(perm)
    if given is not None and not np.array_equal(np.sort(given), np.arange(given.size)):
        raise ValueError(f"conv1x1: perm must be a permutation of range(C), got {perm!r}.")

    def permutation(c: int) -> np.ndarray:
        if given is None:
            return np.arange(c - 1, -1, -1, dtype=np.int32)
        if given.size != c:
            raise ValueError(f"conv1x1: perm has size {given.size}, but the image has C={c}.")
        return given.astype(np.int32)

    def init(key: Array, x: Array, context: Array | None = None) -> dict[str, Array]:
        del context
        _check_image(x, "conv1x1")
        c = jnp.shape(x)[-1]
        permutation(c)
        dtype = jnp.result_type(jnp.asarray(x).dtype, jnp.float32)
        k1, k2 = jax.random.split(key)
        strict = np.tril(np.ones((c, c), bool), -1)
        noise = lambda k: init_scale * jax.random.normal(k, (c, c), dtype)
        return {
            "lower": jnp.where(strict, noise(k1), 0.0),
            "upper": jnp.where(strict.T, noise(k2), 0.0),
            "log_s": jnp.zeros((c,), dtype),
        }

    def factors(params: Params, x: Array) -> tuple[Array, Array, np.ndarray]:
        c = params["log_s"].shape[-1]
        _check_image(x, "conv1x1", c)
        strict = np.tril(np.ones((c, c), bool), -1)
        lower = jnp.where(strict, params["lower"], 0.0) + jnp.eye(c, dtype=params["lower"].dtype)
        upper = jnp.where(strict.T, params["upper"], 0.0) + jnp.diag(jnp.exp(params["log_s"]))
        return lower, upper, permutation(c)

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        lower, upper, p = factors(params, x)
        w = (lower @ upper)[p]
        hw = x.shape[0] * x.shape[1]
        return jnp.einsum("hwc,dc->hwd", x, w), hw * jnp.sum(params["log_s"])

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        lower, upper, p = factors(params, y)
        p_inv_matrix = jnp.eye(p.size, dtype=lower.dtype)[np.argsort(p)]  # P^T
        z = solve_triangular(lower, p_inv_matrix, lower=True, unit_diagonal=True)
        w_inv = solve_triangular(upper, z, lower=False)
        hw = y.shape[0] * y.shape[1]
        return jnp.einsum("hwc,dc->hwd", y, w_inv), -hw * jnp.sum(params["log_s"])

    return Bijector(init, forward, inverse)


def squeeze() -> Bijector:
    """Space-to-depth 2x2 (RealNVP, Glow): ``forward`` maps ``(H, W, C) -> (H/2, W/2, 4C)`` with

        y[i, j, 4 c + 2 a + b] = x[2 i + a, 2 j + b, c],     a, b in {0, 1}

    (Glow's ``squeeze2d`` channel order). ``inverse`` is depth-to-space; ``invert(squeeze())``
    is unsqueeze. A permutation: no params, log-det 0. ``forward`` raises a ``ValueError`` on
    odd ``H`` or ``W``, ``inverse`` on ``C`` not divisible by 4. ``init`` only checks that its
    example is one image, so ``invert(squeeze())`` initializes from either side's event.
    """

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        _check_image(x, "squeeze")
        h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(
                f"squeeze: height and width must be even to squeeze 2x2, got an image of shape "
                f"{x.shape}. Pad or crop the images, or use fewer scales."
            )
        y = x.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 4, 1, 3)
        return y.reshape(h // 2, w // 2, 4 * c), _zero(x)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        _check_image(y, "unsqueeze")
        h, w, c4 = y.shape
        if c4 % 4:
            raise ValueError(
                f"unsqueeze: the channel count must be divisible by 4, got shape {y.shape}."
            )
        x = y.reshape(h, w, c4 // 4, 2, 2).transpose(0, 3, 1, 4, 2)
        return x.reshape(2 * h, 2 * w, c4 // 4), _zero(y)

    def init(key: Array, x: Array, context: Array | None = None) -> tuple[()]:
        _check_image(x, "squeeze")
        return _no_params(key, x, context)

    return Bijector(init, forward, inverse)


# --------------------------------------------------------------------------------------------
# Image couplings
# --------------------------------------------------------------------------------------------


def glow_affine_transformer() -> Transformer:
    """Glow's affine coupling transform, with ``(t, r) = raw[..., 0], raw[..., 1]`` and
    ``s = sigmoid(r + 2)`` in (0, 1), defined in the data -> latent direction as in Glow:

        inverse (data -> latent):  x = (y + t) * s,      log|dx/dy| = log_sigmoid(r + 2)
        forward (latent -> data):  y = x / s - t,        log|dy/dx| = -log_sigmoid(r + 2)

    The scale cannot blow up the density pass (it only contracts), and sampling expands by at
    most ``1 / s``. At ``raw = 0`` it is the contraction ``s = sigmoid(2) ~ 0.88``, not the
    identity (Glow relies on the ActNorm around it). Compare ``coupling.affine_transformer``
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


def _get_transformer(transformer: str | Transformer) -> Transformer:
    if isinstance(transformer, str) and transformer == "glow":
        return glow_affine_transformer()
    return get_transformer(transformer)


class ZeroConv(nn.Module):
    """One zero-initialized ``kernel_size`` conv (Glow's ``Conv2dZeros``): the conditioner of
    the learned split prior. The context (a vector, broadcast over the pixels, or an
    ``(H, W, D)`` map) is concatenated to the input channels."""

    out_channels: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        if context is not None:
            ctx = jnp.asarray(context, x.dtype)
            if ctx.ndim == 1:
                ctx = jnp.broadcast_to(ctx, (*x.shape[:2], ctx.shape[0]))
            x = jnp.concatenate([x, ctx], axis=-1)
        k = (self.kernel_size, self.kernel_size)
        zero = nn.initializers.zeros
        conv = nn.Conv(self.out_channels, k, padding="SAME", kernel_init=zero, bias_init=zero,
                       name="conv_out")
        return conv(x)


def _conv_channels(params: Params) -> tuple[int | None, int | None]:
    """(input channels of ``conv_in`` (else ``conv_out``), output channels of ``conv_out``),
    or ``None`` for a conditioner without those layer names."""
    inner = params.get("params", {}) if isinstance(params, Mapping) else {}
    first, last = inner.get("conv_in", inner.get("conv_out")), inner.get("conv_out")
    c_in = None if not isinstance(first, Mapping) else first["kernel"].shape[-2]
    c_out = None if not isinstance(last, Mapping) else last["kernel"].shape[-1]
    return c_in, c_out


def _image_coupling(
    name: str,
    channel_mask: bool,
    parity: int,
    transformer: str | Transformer,
    hidden_channels: int,
    num_blocks: int,
    context_dim: int | None,
    num_groups: int | None,
    conditioner: Conditioner | None,
) -> Bijector:
    """A coupling layer on ``(H, W, C)`` images; see ``checkerboard_coupling``."""
    g = _get_transformer(transformer)
    if parity not in (0, 1):
        raise ValueError(f"{name}: parity must be 0 or 1, got {parity}.")
    if context_dim is not None and context_dim < 1:
        raise ValueError(f"{name}: context_dim must be None or >= 1, got {context_dim}.")

    def make_net(out_channels: int) -> nn.Module:
        if conditioner is not None:
            return conditioner(out_channels)
        return ConvResNet(
            out_channels, features=hidden_channels, num_blocks=num_blocks, num_groups=num_groups
        )

    def n_in(c: int) -> int:  # conditioner input channels, without context
        return c + 1 if not channel_mask else c // 2

    def n_trans(c: int) -> int:  # transformed channels (checkerboard: all, masked)
        return c if not channel_mask else c // 2

    def channels_from_params(params: Params) -> int | None:
        _, c_out = _conv_channels(params)
        if c_out is None:
            return None
        return c_out // g.num_params * (2 if channel_mask else 1)

    def check_x(x: Array, c: int | None) -> None:
        _check_image(x, name, c)
        if channel_mask and x.shape[-1] % 2:
            raise ValueError(
                f"{name}: a channel-wise coupling needs an even channel count, got shape "
                f"{x.shape}. Use checkerboard_coupling, or squeeze first."
            )

    def context_channels(context: Array, h: int, w: int) -> int:
        shape = tuple(jnp.shape(context))
        if len(shape) == 1:
            return shape[0]
        if len(shape) == 3 and shape[:2] == (h, w):
            return shape[2]
        raise ValueError(
            f"{name}: expected a context vector (D,) or a context map ({h}, {w}, D) per event, "
            f"got a context of shape {shape}; map batches with jax.vmap."
        )

    def check_context(context: Array | None, x: Array, expected: int | None) -> None:
        """``expected``: context channels the layer was built with; None: not yet known."""
        given = None if context is None else context_channels(context, *x.shape[:2])
        if expected is None:
            expected = context_dim if context_dim is not None else (given or 0)
        if expected > 0 and context is None:
            raise ValueError(
                f"{name}: this layer is conditional (context of size {expected}, set by "
                "context_dim or by the context given at init) but was called without context; "
                "pass context=<vector (D,) or map (H, W, D)> (one per event)."
            )
        if expected == 0 and context is not None:
            raise ValueError(
                f"{name}: this layer was built without context, but got a context of shape "
                f"{jnp.shape(context)}; build it with context_dim=... and init with a context."
            )
        if context is not None and given != expected:
            raise ValueError(
                f"{name}: expected a context of size {expected} (a vector (D,) or the last axis "
                f"of an (H, W, D) map, one per event), got shape {jnp.shape(context)}."
            )

    def split(x: Array) -> tuple[Array, Array | None]:
        """(conditioner input, checkerboard mask or None)."""
        h, w, c = x.shape
        if channel_mask:
            half = c // 2
            return (x[..., :half] if parity == 0 else x[..., half:]), None
        mask = (np.add.outer(np.arange(h), np.arange(w)) + parity) % 2 == 0  # True: condition
        m = jnp.asarray(mask[..., None], x.dtype)
        return jnp.concatenate([x * m, m], axis=-1), mask[..., None]

    def init(key: Array, x: Array, context: Array | None = None) -> Params:
        check_x(x, None)
        x = _float(x)
        check_context(context, x, None)
        inp, _ = split(x)
        ctx = None if context is None else _float(context)
        return make_net(n_trans(x.shape[-1]) * g.num_params).init(key, inp, ctx)

    def raw_params(params: Params, x: Array, context: Array | None) -> tuple[Array, Any]:
        check_x(x, channels_from_params(params))
        c = x.shape[-1]
        c_in, _ = _conv_channels(params)
        check_context(context, x, None if c_in is None else c_in - n_in(c))
        inp, mask = split(x)
        ctx = None if context is None else jnp.asarray(context, x.dtype)
        raw = make_net(n_trans(c) * g.num_params).apply(params, inp, ctx).astype(x.dtype)
        return raw.reshape(*x.shape[:2], n_trans(c), g.num_params), mask

    def apply(fn: Callable, params: Params, x: Array, context: Array | None) -> tuple[Array, Array]:
        raw, mask = raw_params(params, x, context)
        if channel_mask:
            half = x.shape[-1] // 2
            first, second = x[..., :half], x[..., half:]
            xc, xt = (first, second) if parity == 0 else (second, first)
            yt, ldj = fn(raw, xt)
            y = jnp.concatenate([xc, yt] if parity == 0 else [yt, xc], axis=-1)
            return y, jnp.sum(ldj)
        yt, ldj = fn(raw, x)
        return jnp.where(mask, x, yt), jnp.sum(jnp.where(mask, 0.0, ldj))

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        return apply(g.forward, params, x, context)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        return apply(g.inverse, params, y, context)

    return Bijector(init, forward, inverse)


def checkerboard_coupling(
    parity: int = 0,
    transformer: str | Transformer = "affine",
    hidden_channels: int = 64,
    num_blocks: int = 2,
    context_dim: int | None = None,
    num_groups: int | None = 8,
    conditioner: Conditioner | None = None,
) -> Bijector:
    """RealNVP's checkerboard coupling on an ``(H, W, C)`` image.

    Pixels with ``(h + w + parity) % 2 == 0`` (all their channels) pass through and condition
    the others: ``y = m x + (1 - m) g(x; theta)``, ``theta = NN([m x, m], context)``; log-det
    ``sum_{m = 0} log|g'|``. The mask itself is an input channel of the conditioner.

    Args:
      parity: 0 or 1, which half of the checkerboard is transformed; alternate between layers.
      transformer: ``"affine"`` (RealNVP: ``y = x exp(s) + t``, ``s`` tanh-bounded),
        ``"glow"`` (``glow_affine_transformer``: sigmoid scale), ``"additive"`` (NICE),
        ``"spline"``, or any ``Transformer``.
      hidden_channels, num_blocks, num_groups: the conditioner ``gen.nn.resnet.ConvResNet``
        (width, residual blocks, GroupNorm groups or None); its last conv starts at zero.
      context_dim: context size; ``None`` takes it from ``init``'s context. A context is a
        vector ``(D,)`` (broadcast over the pixels as extra input channels; a class label
        becomes one through ``flows.class_conditional``) or a map ``(H, W, D)``.
      conditioner: overrides the ConvResNet: ``make(out_channels) -> Linen module`` called as
        ``net(x, context)``. Name its first conv ``conv_in`` and its last ``conv_out`` to keep
        the shape and context checks.
    """
    return _image_coupling(
        "checkerboard_coupling", False, parity, transformer, hidden_channels, num_blocks,
        context_dim, num_groups, conditioner,
    )


def channel_coupling(
    parity: int = 0,
    transformer: str | Transformer = "affine",
    hidden_channels: int = 64,
    num_blocks: int = 2,
    context_dim: int | None = None,
    num_groups: int | None = 8,
    conditioner: Conditioner | None = None,
) -> Bijector:
    """Channel-wise coupling (RealNVP after a squeeze; Glow) on an ``(H, W, C)`` image, C even.

    ``parity = 0``: the first ``C/2`` channels pass through and condition the last ``C/2``;
    ``parity = 1``: the other way round. ``y_t = g(x_t; NN(x_c, context))``, log-det
    ``sum log|g'|``. See ``checkerboard_coupling`` for the other arguments.
    """
    return _image_coupling(
        "channel_coupling", True, parity, transformer, hidden_channels, num_blocks,
        context_dim, num_groups, conditioner,
    )


# --------------------------------------------------------------------------------------------
# Multi-scale factor-out architecture
# --------------------------------------------------------------------------------------------


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

