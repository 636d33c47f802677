"""The learned, monotone log-SNR schedule of VDM (Kingma et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.diffusion.schedules._common import (
    Array,
    ArrayLike,
    Params,
    _as_time,
    _check_steps,
)


class LearnedSchedule(NamedTuple):
    """A schedule with parameters: ``apply(params, t) -> lambda``;
    ``functools.partial(apply, params)`` is a plain :data:`Schedule`.

    Attributes:
      init: ``init(key) -> params``.
      apply: ``apply(params, t) -> lambda(t)``, decreasing in t for any params.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def learned(
    gamma_min: float = -13.3, gamma_max: float = 5.0, num_features: int = 1024
) -> LearnedSchedule:
    """VDM's learned monotone schedule (Kingma et al. 2021, ``NoiseSchedule_NNet``).

    The network is increasing in t because every weight enters through its absolute value:
    ``h(t) = |w1| t + sum_k |w3_k| (2 sigmoid(|w2_k| (2t - 1) + b2_k) - 1) / num_features``.
    ``gamma = -lambda`` is h rescaled so that its endpoints are fixed:
    ``gamma(t) = gamma_min + (gamma_max - gamma_min) (h(t) - h(0)) / (h(1) - h(0))``, so
    ``lambda(0) = -gamma_min`` and ``lambda(1) = -gamma_max``. The init follows VDM (``w1 =
    gamma_max - gamma_min``, ``w2, w3 ~ N(0, 0.01^2)``, ``b2 = 0``): nearly linear in gamma.
    The defaults are VDM's CIFAR-10 endpoints.
    """
    if not gamma_min < gamma_max:
        raise ValueError(
            f"learned: need gamma_min < gamma_max, got gamma_min={gamma_min}, "
            f"gamma_max={gamma_max}."
        )
    num_features = _check_steps(num_features, "num_features")

    def init(key: Array) -> dict[str, Array]:
        k2, k3 = jax.random.split(key)
        return {
            "w1": jnp.asarray(gamma_max - gamma_min, jnp.float32),
            "w2": 0.01 * jax.random.normal(k2, (num_features,), jnp.float32),
            "b2": jnp.zeros((num_features,), jnp.float32),
            "w3": 0.01 * jax.random.normal(k3, (num_features,), jnp.float32),
        }

    def net(params: dict[str, Array], t: Array) -> Array:
        hidden = (2.0 * t - 1.0)[..., None] * jnp.abs(params["w2"]) + params["b2"]
        hidden = 2.0 * jax.nn.sigmoid(hidden) - 1.0
        return jnp.abs(params["w1"]) * t + hidden @ jnp.abs(params["w3"]) / num_features

    def apply(params: dict[str, Array], t: ArrayLike) -> Array:
        t = _as_time(t)
        h = net(params, t)
        ends = net(params, jnp.asarray([0.0, 1.0], t.dtype))
        span = jnp.maximum(ends[1] - ends[0], jnp.finfo(h.dtype).tiny)
        gamma = gamma_min + (gamma_max - gamma_min) * ((h - ends[0]) / span)
        return -gamma

    return LearnedSchedule(init, apply)
