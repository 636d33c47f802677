"""Exponential moving averages of the params, set up and applied by each family.

The family decides what is averaged and how: a diffusion model averages all its params, a GAN
only its generator. After each optimizer update of train step ``n`` (1-based),

    e <- p                            while n <= start   (warm-up: the average tracks the params)
    e <- e + (1 - decay) (p - e)      afterwards

so ``start`` steps of warm-up keep the early, fast-moving weights out of the average (BigGAN and
mimicry start the generator's EMA after a set step the same way). Evaluation and sampling use
the average (``TrainState.eval_params``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from gen.errors import ConfigError
from gen.train.state import TrainState


class EMA(NamedTuple):
    """How a family averages its params.

    Attributes:
      decay: the per-step decay in [0, 1).
      start: steps of warm-up during which the average equals the params.
      part: the part of a multi-part state to average (``None``: all params).
    """

    decay: float
    start: int = 0
    part: str | None = None


def ema_from_config(config: ml_collections.ConfigDict, part: str | None = None) -> EMA | None:
    """``EMA(config.ema_decay, config.ema_start, part)``, or ``None`` when ``ema_decay`` is 0."""
    decay = float(config.get("ema_decay", 0.0))
    start = config.get("ema_start", 0)
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"ema_decay must be in [0, 1), got {decay}.")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ConfigError(f"ema_start must be a non-negative integer, got {start!r}.")
    return EMA(decay, start, part) if decay > 0 else None


def update_ema(state: TrainState, ema: EMA | None) -> TrainState:
    """The state with its average moved toward the params of step ``state.step + 1``.

    Call it after the optimizer update, inside the family's step; a no-op for ``ema=None``.
    """
    if ema is None:
        return state
    params = state.params if ema.part is None else state.params[ema.part]
    rate = 1.0 - ema.decay
    average = jax.tree.map(lambda e, p: e + rate * (p - e), state.ema_params, params)
    if ema.start > 0:
        warm = state.step + 1 <= ema.start
        average = jax.tree.map(lambda a, p: jnp.where(warm, p, a), average, params)
    return state.replace(ema_params=average)
