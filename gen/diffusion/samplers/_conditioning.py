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
    denoiser: ClassConditional, scale: float | Array, null_label: ArrayLike
) -> ClassConditional:
    """Classifier-free guidance (Ho & Salimans 2022): ``pred_u + scale (pred_c - pred_u)``.

    ``pred_c = apply(x, t, labels)`` and ``pred_u = apply(x, t, null)`` with ``null`` the
    ``null_label`` broadcast to the labels' shape (e.g. the extra class index the model was
    trained with under label dropout). Both come from **one** call on the doubled batch of size
    2B. ``scale = 1`` is the conditional model, ``scale = 0`` the unconditional one (the
    convention of diffusers' ``guidance_scale``; Ho & Salimans' ``w`` is ``scale - 1``). Since
    every conversion between parameterizations is affine in the prediction at fixed ``(x_t, t)``
    and the weights sum to 1, guiding eps, x0, v, score or velocity is the same.

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
        return pred_u + scale * (pred_c - pred_u)

    return ClassConditional(apply)


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

