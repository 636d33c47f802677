"""The train state: one pytree that a checkpoint saves and a resumed run restores exactly.

One network or several. A single network keeps its params and optimizer state at the top:
``state.params`` is the network's params pytree. A model of several networks (a GAN's generator
and discriminator, each with its own optimizer) keeps one entry per named *part*:
``state.params = {"generator": ..., "discriminator": ...}`` and ``state.opt_state`` the same
keys, created by passing a mapping of optimizers to :meth:`TrainState.create` and updated one
part at a time with ``apply_gradients(state, grads, txs, part="discriminator")``.

Variables that are not gradient targets (BatchNorm statistics, spectral-norm power-iteration
vectors, a VQ-VAE's EMA codebook) live in ``state.model_state``, a pytree the family owns.
The exponential moving average of the params (or of one part) is set up by the family with
:class:`gen.train.ema.EMA`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:
    from gen.train.ema import EMA

Params = Any
Optimizer = optax.GradientTransformation | Mapping[str, optax.GradientTransformation]


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue bit for bit.

    Attributes:
      step: number of train steps done (int32 scalar).
      params: the trainable parameters: one network's pytree, or ``{part: pytree}``.
      opt_state: the optimizer state of ``params``: one state, or ``{part: state}``.
      rng: the run's base PRNG key (raw ``uint32[2]``); step ``s`` uses ``fold_in(rng, s)``.
      ema_params: the moving average of ``params`` (or of the part ``ema_part``), or ``None``.
      data_position: number of global batches consumed, the input pipeline's position.
      model_state: non-trainable variables (e.g. ``{"batch_stats": ...}``); ``{}`` when none.
      ema_part: which part ``ema_params`` averages (``None``: all of ``params``). Static.
    """

    step: jax.Array
    params: Params
    opt_state: optax.OptState
    rng: jax.Array
    ema_params: Params | None
    data_position: jax.Array
    model_state: Any = flax.struct.field(default_factory=dict)
    ema_part: str | None = flax.struct.field(pytree_node=False, default=None)

    @classmethod
    def create(
        cls,
        params: Params,
        tx: Optimizer,
        rng: jax.Array,
        ema: bool | EMA | None = None,
        model_state: Any = None,
    ) -> TrainState:
        """A fresh state at step 0.

        Args:
          params: one network's params, or ``{part: params}`` when ``tx`` is a mapping.
          tx: the optimizer, or ``{part: optimizer}`` with the same keys as ``params``.
          rng: the run's base key.
          ema: an :class:`~gen.train.ema.EMA` (its ``part`` says what is averaged), or
            ``True`` to average all params; the average starts at the params.
          model_state: non-trainable variables, ``{}`` by default.
        """
        if isinstance(tx, Mapping):
            if not isinstance(params, Mapping) or set(params) != set(tx):
                got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
                raise ValueError(
                    f"a mapping of optimizers needs params with the same parts: optimizers for "
                    f"{sorted(tx)}, params {got}.")
            opt_state = {name: tx[name].init(params[name]) for name in tx}
        else:
            opt_state = tx.init(params)
        part = getattr(ema, "part", None)
        if part is not None and (not isinstance(params, Mapping) or part not in params):
            raise ValueError(f"EMA of part {part!r}, but the params have no such part.")
        if ema is None or ema is False:
            ema_params = None
        else:
            averaged = params if part is None else params[part]
            ema_params = jax.tree.map(jnp.copy, averaged)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=opt_state,
            rng=rng,
            ema_params=ema_params,
            data_position=jnp.zeros((), jnp.int32),
            model_state={} if model_state is None else model_state,
            ema_part=part,
        )

    @property
    def parts(self) -> tuple[str, ...] | None:
        """The names of the parts when ``opt_state`` holds one per part, else ``None``."""
        if isinstance(self.opt_state, Mapping) and isinstance(self.params, Mapping) and (
                set(self.opt_state) == set(self.params)):
            return tuple(self.params)
        return None

    def eval_params(self) -> Params:
        """The params to evaluate and sample with: the EMA, where there is one, in its place."""
        if self.ema_params is None:
            return self.params
        if self.ema_part is None:
            return self.ema_params
        return {**self.params, self.ema_part: self.ema_params}


def apply_gradients(
    state: TrainState, grads: Params, tx: Optimizer, part: str | None = None
) -> TrainState:
    """One optimizer update of ``state.params``, or of its part ``part`` only.

    With ``part``, ``grads`` are that part's gradients and ``tx`` its optimizer (or the mapping
    of every part's optimizer). Increments nothing else: the loop counts steps.
    """
    if part is None:
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state)
    if not isinstance(state.params, Mapping) or part not in state.params:
        raise ValueError(f"apply_gradients(part={part!r}): the state has no such part.")
    tx = tx[part] if isinstance(tx, Mapping) else tx
    params, opt_state = state.params[part], state.opt_state[part]
    updates, opt_state = tx.update(grads, opt_state, params)
    return state.replace(
        params={**state.params, part: optax.apply_updates(params, updates)},
        opt_state={**state.opt_state, part: opt_state},
    )
