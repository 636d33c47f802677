"""ActNorm (Glow): a per-channel affine map, with its data-dependent initialization."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gen.flows.bijector import Array, Bijector, Params
from gen.flows.image._common import _check_image, _float

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
