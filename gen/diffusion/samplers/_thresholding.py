"""Transforms of the predicted x0 applied inside every sampler: dynamic thresholding."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
X0Transform = Callable[[Array], Array]


def dynamic_threshold(ratio: float = 0.995, max_value: float = 1.0) -> X0Transform:
    """Dynamic thresholding of the predicted x0 (Saharia et al. 2022, Imagen, Section 2.3).

    Per example, over all non-batch axes: ``s = clip(quantile(|x0|, ratio), 1, max_value)``,
    then ``x0 <- clip(x0, -s, s) / s``. The result lies in [-1, 1]; with ``max_value = 1`` it is
    plain clipping to [-1, 1]. diffusers' ``thresholding=True, dynamic_thresholding_ratio=ratio,
    sample_max_value=max_value`` (``_threshold_sample``, linear quantile interpolation). Pass
    the result as ``x0_transform=`` to any sampler::

        threshold = samplers.dynamic_threshold(ratio=0.995, max_value=1.5)
        x = samplers.ddim(net, "eps", sched, x_T, ts, x0_transform=threshold)
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"dynamic_threshold: ratio must lie in (0, 1], got {ratio}.")
    if not max_value >= 1.0:
        raise ValueError(f"dynamic_threshold: max_value must be >= 1, got {max_value}.")

    def transform(x0: Array) -> Array:
        if x0.ndim < 2:
            raise ValueError(
                f"dynamic_threshold: x0 needs a batch axis and event axes, got shape {x0.shape}."
            )
        flat = x0.reshape(x0.shape[0], -1)
        s = jnp.quantile(jnp.abs(flat), ratio, axis=1, keepdims=True)
        s = jnp.clip(s, 1.0, max_value).astype(x0.dtype)
        return (jnp.clip(flat, -s, s) / s).reshape(x0.shape)

    return transform
