"""The discriminator's layers, spectrally normalized or plain behind one signature.

``Dense(features, spectral_norm)(x, update_stats)`` and ``Conv(...)(x, update_stats)`` are
``SNDense`` / ``SNConv`` when ``spectral_norm`` and Flax's ``nn.Dense`` / ``nn.Conv`` otherwise
(``update_stats`` is then ignored), so one architecture serves SNGAN and WGAN-GP alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax

from gen.gan.spectral_norm import SNConv, SNDense

Array = jax.Array


class Dense(nn.Module):
    features: int
    spectral_norm: bool = False
    use_bias: bool = True
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array, update_stats: bool = False) -> Array:
        if self.spectral_norm:
            return SNDense(self.features, self.use_bias, dtype=self.dtype,
                           kernel_init=self.kernel_init, name="layer")(x, update_stats)
        return nn.Dense(self.features, use_bias=self.use_bias, dtype=self.dtype,
                        kernel_init=self.kernel_init, name="layer")(x)


class Conv(nn.Module):
    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    spectral_norm: bool = False
    use_bias: bool = True
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array, update_stats: bool = False) -> Array:
        if self.spectral_norm:
            return SNConv(self.features, tuple(self.kernel_size), tuple(self.strides),
                          use_bias=self.use_bias, dtype=self.dtype,
                          kernel_init=self.kernel_init, name="layer")(x, update_stats)
        return nn.Conv(self.features, tuple(self.kernel_size), tuple(self.strides),
                       padding="SAME", use_bias=self.use_bias, dtype=self.dtype,
                       kernel_init=self.kernel_init, name="layer")(x)
