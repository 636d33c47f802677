"""The train state: one pytree that a checkpoint saves and a resumed run restores exactly."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

Params = Any


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue bit for bit.

    Attributes:
      step: number of optimizer updates done (int32 scalar).
      params: the model parameters.
      opt_state: the optimizer state for ``params``.
      rng: the run's base PRNG key (raw ``uint32[2]``); step ``s`` uses ``fold_in(rng, s)``.
      ema_params: an exponential moving average of ``params``, or ``None`` when unused.
      data_position: number of global batches consumed, the input pipeline's position.
    """

    step: jax.Array
    params: Params
    opt_state: optax.OptState
    rng: jax.Array
    ema_params: Params | None
    data_position: jax.Array

    @classmethod
    def create(
        cls, params: Params, tx: optax.GradientTransformation, rng: jax.Array, ema: bool = False
    ) -> TrainState:
        """A fresh state at step 0; ``ema=True`` starts the average at ``params``."""
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=rng,
            ema_params=jax.tree.map(jnp.copy, params) if ema else None,
            data_position=jnp.zeros((), jnp.int32),
        )

    def eval_params(self) -> Params:
        """The params to evaluate and sample with: the EMA where there is one."""
        return self.params if self.ema_params is None else self.ema_params


def apply_gradients(
    state: TrainState, grads: Params, tx: optax.GradientTransformation
) -> TrainState:
    """One optimizer update of ``state.params``; increments nothing else."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)
