"""The denoising network of a diffusion or flow-matching config, as a pure ``apply`` function.

Images get the DDPM UNet, vectors the MLP denoiser, both from ``gen.nn``. The network sees time
as ``time_scale * t`` (default 1000, the DDPM range its sinusoidal embedding is built for).
With ``model.class_conditional`` it takes labels, and with ``model.guidance`` it also learns the
unconditional model through a null label (index ``num_classes``) for classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.nn import MLPDenoiser, UNet

Apply = Callable[..., jax.Array]


class Network:
    """``init(key, x, labels)``, ``apply(params, x_t, t, labels=None, rng=None)`` and labels info.

    ``apply`` runs dropout when ``rng`` is given (training) and is deterministic otherwise.
    With ``learned_variance`` the network returns 2C channels on the last axis: its prediction,
    then Improved DDPM's variance interpolation v (``gen.diffusion.process.split_variance``).
    """

    def __init__(self, model: ml_collections.ConfigDict, spec: DataSpec,
                 learned_variance: bool = False):
        self.class_conditional = bool(model.get("class_conditional", False))
        self.guidance = bool(model.get("guidance", False))
        if self.class_conditional and not spec.num_classes:
            raise ConfigError("model.class_conditional needs labelled data; this dataset has none.")
        if self.guidance and not self.class_conditional:
            raise ConfigError("model.guidance (classifier-free) needs model.class_conditional.")
        self.num_classes = spec.num_classes if self.class_conditional else None
        self.null_label = spec.num_classes if self.guidance else None
        self.time_scale = float(model.get("time_scale", 1000.0))
        dtype = jnp.bfloat16 if model.get("dtype", "float32") == "bfloat16" else jnp.float32
        out = 2 * spec.shape[-1] if learned_variance else None
        if spec.kind == "image":
            self.module: nn.Module = UNet(
                ch=model.get("ch", 64), ch_mult=tuple(model.get("ch_mult", (1, 2))),
                num_res_blocks=model.get("num_res_blocks", 2),
                attn_resolutions=tuple(model.get("attn_resolutions", ())),
                dropout=model.get("dropout", 0.0), num_groups=model.get("num_groups", 8),
                num_classes=self.num_classes, null_class=self.guidance, out_channels=out,
                dtype=dtype)
        else:
            self.module = MLPDenoiser(
                width=model.get("width", 256), num_blocks=model.get("num_blocks", 3),
                dropout=model.get("dropout", 0.0), num_classes=self.num_classes,
                null_class=self.guidance, out_features=out, dtype=dtype)

    def init(self, key: jax.Array, x: jax.Array, labels: jax.Array | None = None) -> Any:
        t = jnp.zeros(x.shape[:1], jnp.float32)
        labels = labels if self.class_conditional else None
        return self.module.init({"params": key}, x, t, labels)["params"]

    def apply(self, params: Any, x_t: jax.Array, t: jax.Array, labels: jax.Array | None = None,
              rng: jax.Array | None = None) -> jax.Array:
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), x_t.shape[:1])
        labels = labels if self.class_conditional else None
        rngs = {"dropout": rng} if rng is not None else {}
        return self.module.apply({"params": params}, x_t, self.time_scale * t, labels,
                                 train=rng is not None, rngs=rngs)

    def labels_for_sampling(self, key: jax.Array, num: int, labels: jax.Array | None) -> Any:
        """The labels to sample with: as given, else uniform over the classes (or None)."""
        if not self.class_conditional:
            return None
        if labels is not None:
            return jnp.asarray(labels, jnp.int32)
        return jax.random.randint(key, (num,), 0, self.num_classes)
