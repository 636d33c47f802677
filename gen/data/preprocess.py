"""On-device preprocessing: scaling, uniform dequantization, static and dynamic binarization.

Raw batches travel to the devices as stored (uint8 images, float32 vectors) and are transformed
inside the compiled train step, with randomness from the step's key, so a resumed run draws the
same noise. Image conventions, for pixels ``x`` in {0, ..., 255} and ``u ~ U[0, 1)``:

=================  ===========================  ===========================
``data.scale``     ``dequantize='uniform'``     ``dequantize='none'``
=================  ===========================  ===========================
``unit``           ``y = (x + u) / 256``         ``y = x / 255``
``symmetric``      ``y = 2 (x + u) / 256 - 1``   ``y = 2 x / 255 - 1``
=================  ===========================  ===========================

Bits per dimension are reported in the original 8-bit space: with ``y = a (x + u) + b`` the
density of the dequantized pixels is ``p(x + u) = p_model(y) a^D``, so
``bpd = (nll_model - D log a) / (D log 2)``. Binarization maps pixels to {0, 1}
(``static``: ``x >= 128``; ``dynamic``: a fresh ``Bernoulli(x / 255)`` draw every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gen.data.source import DataSpec
from gen.errors import ConfigError

SCALES = ("unit", "symmetric")
DEQUANTIZE = ("uniform", "none")
BINARIZE = ("none", "static", "dynamic")
# The config keys of image preprocessing and their defaults (gen.data.loaders.source_keys).
KEYS = {"scale": "unit", "dequantize": "uniform", "binarize": "none"}


class Preprocess(NamedTuple):
    """How raw batches become model inputs, and back.

    Attributes:
      apply: ``apply(batch, key) -> batch``, jittable; transforms ``batch["x"]``.
      postprocess: model-space samples -> data units (uint8 pixels for images) on the host.
      log_scale: ``log a`` per dimension for the 8-bit bits/dim conversion, or ``None`` where
        bits/dim in 8-bit space is not defined (vectors, binarized or undequantized images).
    """

    apply: Callable[[dict, jax.Array], dict]
    postprocess: Callable[[np.ndarray], np.ndarray]
    log_scale: float | None

    def bits_per_dim(self, nll: np.ndarray, dim: int) -> np.ndarray:
        """Converts model-space NLL in nats per example into bits per 8-bit dimension."""
        if self.log_scale is None:
            raise ValueError("bits/dim needs uniformly dequantized, unbinarized images.")
        return (np.asarray(nll) - dim * self.log_scale) / (dim * math.log(2.0))


def _choice(cfg, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = cfg.get(key, default)
    if value not in allowed:
        raise ConfigError(f"data.{key}={value!r} is not one of {', '.join(allowed)}.")
    return value


def make_preprocess(spec: DataSpec, data_config) -> Preprocess:
    """Builds the preprocessing that ``data_config`` asks for (see the module docstring)."""
    if spec.kind == "vector":
        return Preprocess(
            apply=lambda batch, key: {**batch, "x": jnp.asarray(batch["x"], jnp.float32)},
            postprocess=lambda x: np.asarray(x, np.float32),
            log_scale=None,
        )

    scale = _choice(data_config, "scale", KEYS["scale"], SCALES)
    binarize = _choice(data_config, "binarize", KEYS["binarize"], BINARIZE)
    dequantize = _choice(data_config, "dequantize", KEYS["dequantize"], DEQUANTIZE)
    if binarize != "none":
        def apply(batch: dict, key: jax.Array) -> dict:
            x = jnp.asarray(batch["x"], jnp.float32)
            if binarize == "static":
                y = (x >= 128).astype(jnp.float32)
            else:
                y = jax.random.bernoulli(key, x / 255.0).astype(jnp.float32)
            return {**batch, "x": y}

        def postprocess(y: np.ndarray) -> np.ndarray:
            return (np.clip(np.asarray(y, np.float32), 0, 1) * 255).round().astype(np.uint8)

        return Preprocess(apply, postprocess, None)

    a, b = (1.0, 0.0) if scale == "unit" else (2.0, -1.0)
    levels = 256.0 if dequantize == "uniform" else 255.0

    def apply(batch: dict, key: jax.Array) -> dict:
        x = jnp.asarray(batch["x"], jnp.float32)
        if dequantize == "uniform":
            x = x + jax.random.uniform(key, x.shape, jnp.float32)
        return {**batch, "x": a * x / levels + b}

    def postprocess(y: np.ndarray) -> np.ndarray:
        x = (np.asarray(y, np.float32) - b) / a * levels
        if dequantize == "uniform":
            x = np.floor(x)
        return np.clip(np.round(x) if dequantize == "none" else x, 0, 255).astype(np.uint8)

    log_scale = math.log(a / levels) if dequantize == "uniform" else None
    return Preprocess(apply, postprocess, log_scale)
