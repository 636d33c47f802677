"""Class conditioning and classifier-free guidance: wrappers around a denoiser."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Denoiser = Callable[[Array, Array], Array]


class ClassConditional(NamedTuple):
    """A denoiser that takes class labels: ``apply(x_t, t, labels) -> prediction``.

    The wrapper is the marker that tells samplers and :func:`guided` that the function takes
    labels. Sample from it by passing ``labels=`` to any sampler, or bind them with
    :func:`with_labels`.
    """

    apply: Callable[[Array, Array, Array], Array]


def class_conditional(fn: Callable[[Array, Array, Array], Array]) -> ClassConditional:
    """Marks ``fn(x_t, t, labels) -> prediction`` as a class-conditional denoiser."""
    if isinstance(fn, ClassConditional):
        return fn
    if not callable(fn):
        raise ValueError(f"class_conditional: expected a function (x_t, t, labels), got {fn!r}.")
    return ClassConditional(fn)


def with_labels(denoiser: ClassConditional, labels: ArrayLike) -> Denoiser:
    """The plain denoiser ``(x_t, t) -> denoiser.apply(x_t, t, labels)`` (labels passed through)."""
    if not isinstance(denoiser, ClassConditional):
        raise ValueError(
            "with_labels: the denoiser takes no labels; wrap a function (x_t, t, labels) with "
            "samplers.class_conditional first."
        )
    labels = jnp.asarray(labels)

    def bound(x_t: Array, t: Array) -> Array:
        if labels.ndim == 0 or labels.shape[0] != x_t.shape[0]:
            raise ValueError(
                f"labels must have the batch size {x_t.shape[0]} as leading axis, got shape "
                f"{labels.shape}."
            )
        return denoiser.apply(x_t, t, labels)

    return bound


def guided(
    denoiser: ClassConditional,
    scale: float | Array,
    null_label: ArrayLike,
    *,
    learned_variance: bool = False,
) -> ClassConditional:
    """Classifier-free guidance (Ho & Salimans 2022): ``pred_u + scale (pred_c - pred_u)``.

    ``pred_c = apply(x, t, labels)`` and ``pred_u = apply(x, t, null)`` with ``null`` the
    ``null_label`` broadcast to the labels' shape (e.g. the extra class index the model was
    trained with under label dropout). Both come from **one** call on the doubled batch of size
    2B. ``scale = 1`` is the conditional model, ``scale = 0`` the unconditional one (the
    convention of diffusers' ``guidance_scale``; Ho & Salimans' ``w`` is ``scale - 1``). Since
    every conversion between parameterizations is affine in the prediction at fixed ``(x_t, t)``
    and the weights sum to 1, guiding eps, x0, v, score or velocity is the same.

    ``learned_variance``: the denoiser returns 2C channels (prediction and v, for ``ddpm(...,
    variance="learned_range")``); only the prediction is guided, v is the conditional one's
    (GLIDE's choice), so the variance stays inside its range.

    Returns a :class:`ClassConditional`: sample it with ``labels=``. Raises a ``ValueError`` if
    the denoiser takes no labels.
    """
    if not isinstance(denoiser, ClassConditional):
        raise ValueError(
            "guided: classifier-free guidance needs a class-conditional denoiser (x_t, t, labels) "
            "wrapped with samplers.class_conditional; this denoiser takes no labels."
        )

    def apply(x_t: Array, t: Array, labels: Array) -> Array:
        labels = jnp.asarray(labels)
        null = jnp.broadcast_to(jnp.asarray(null_label, labels.dtype), labels.shape)
        pred = denoiser.apply(
            jnp.concatenate([x_t, x_t]),
            jnp.concatenate([t, t]),
            jnp.concatenate([labels, null]),
        )
        pred_c, pred_u = jnp.split(pred, 2)
        if learned_variance:
            c = x_t.shape[-1]
            mean = pred_u[..., :c] + scale * (pred_c[..., :c] - pred_u[..., :c])
            return jnp.concatenate([mean, pred_c[..., c:]], axis=-1)
        return pred_u + scale * (pred_c - pred_u)

    return ClassConditional(apply)


def mean_only(denoiser: Denoiser | ClassConditional) -> Denoiser | ClassConditional:
    """A learned-variance denoiser (2C output channels on the last axis: prediction, then v)
    without its variance part: ``(x_t, t[, labels]) -> prediction`` with C channels. Every
    sampler but ``ddpm(..., variance="learned_range")`` refuses a 2C output, so pass it through
    this to sample with DDIM, DPM-Solver, the Karras samplers or the probability-flow ODE,
    which ignore the variance (as diffusers' pipelines do). A conditional one stays conditional.
    """

    def first_half(pred: Array, x_t: Array) -> Array:
        pred, c = jnp.asarray(pred), x_t.shape[-1]
        if pred.shape != (*x_t.shape[:-1], 2 * c):
            raise ValueError(
                f"mean_only: expected a 2C-channel output {(*x_t.shape[:-1], 2 * c)} for an input "
                f"of shape {x_t.shape}, got {pred.shape}."
            )
        return pred[..., :c]

    if isinstance(denoiser, ClassConditional):
        inner = denoiser.apply
        return ClassConditional(lambda x_t, t, labels: first_half(inner(x_t, t, labels), x_t))
    if not callable(denoiser):
        raise ValueError(f"mean_only: expected a denoiser function (x_t, t), got {denoiser!r}.")
    return lambda x_t, t: first_half(denoiser(x_t, t), x_t)


def _bind(denoiser: Denoiser | ClassConditional, labels: ArrayLike | None) -> Denoiser:
    if isinstance(denoiser, ClassConditional):
        if labels is None:
            raise ValueError(
                "this denoiser is class-conditional (or guided): pass labels=... (an array with "
                "the batch size as leading axis)."
            )
        return with_labels(denoiser, labels)
    if labels is not None:
        raise ValueError(
            "labels were given, but the denoiser takes none; wrap a function (x_t, t, labels) "
            "with samplers.class_conditional."
        )
    if not callable(denoiser):
        raise ValueError(f"expected a denoiser function (x_t, t), got {denoiser!r}.")
    return denoiser

