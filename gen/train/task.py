"""What a model family hands the generic loop: a :class:`Task` of pure functions.

``gen/train`` knows nothing about any family. A family's ``build_task(config, spec)`` returns a
``Task``; the loop compiles ``task.step`` once with ``jax.jit`` over the mesh, evaluates with
``task.evaluate`` and draws pictures with ``task.sample``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from gen.train.state import TrainState

Batch = dict[str, jax.Array]
Params = Any


class Task(NamedTuple):
    """A family's training recipe.

    Attributes:
      init: ``init(key, batch) -> TrainState`` from one preprocessed example batch.
      step: ``step(state, batch, key) -> (state, metrics)``; one optimizer update. ``metrics``
        holds scalars and must include ``loss``. It must advance ``state.step`` by one.
      evaluate: ``evaluate(params, batch, key) -> {name: per-example values (B,)}``, or None.
        A value named ``nll`` (nats per example in model space) is reported as ``test_nll``
        for vectors and converted to ``test_bpd`` for dequantized images; any other name
        ``m`` is reported as ``test_m``.
      sample: ``sample(params, key, num, labels=None) -> (num, *event_shape)`` in model space.
      log_prob: ``log_prob(params, x) -> (B,)`` for density plots of 2-D data, or None.
    """

    init: Callable[[jax.Array, Batch], TrainState]
    step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    evaluate: Callable[[Params, Batch, jax.Array], dict[str, jax.Array]] | None
    sample: Callable[..., jax.Array]
    log_prob: Callable[[Params, jax.Array], jax.Array] | None = None
