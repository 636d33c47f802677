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
      step: ``step(state, batch, key) -> (state, metrics)``; one train step. ``metrics``
        holds scalars and must include ``loss``. The loop advances ``state.step`` and
        ``state.data_position``; the step does the optimizer updates (one per part, or several
        for a GAN's discriminator) and the EMA update of ``gen.train.ema``.
      evaluate: ``evaluate(params, batch, key) -> {name: per-example values (B,)}``, or None.
        A value named ``nll`` (nats per example in model space) is reported as ``test_nll``
        for vectors and converted to ``test_bpd`` for dequantized images; any other name
        ``m`` is reported as ``test_m``. Values of shape ``(B, ...)`` (per-example vectors)
        are averaged over the test set too, and handed to ``summarize`` instead of reported.
      sample: ``sample(params, key, num, labels=None) -> (num, *event_shape)`` in model space.
      log_prob: ``log_prob(params, x) -> (B,)`` log-densities of model-space events, for
        density plots of 2-D data and ``load_run(...).log_prob``; or None.
      eval_params: ``eval_params(state) -> params``, what ``evaluate``, ``sample`` and
        ``log_prob`` receive; None means ``state.eval_params()`` (the params, with the EMA in
        place of what it averages). A family with ``model_state`` (e.g. BatchNorm statistics)
        returns what its networks need from both.
      summarize: ``summarize(means) -> {name: float}``, or None: test-set statistics that are
        not means of per-example values (a VAE's active units, a codebook's perplexity), from
        ``means``, the test-set mean of every ``evaluate`` output (arrays for ``(B, ...)``
        outputs); each ``name`` is reported as ``test_name``.
    """

    init: Callable[[jax.Array, Batch], TrainState]
    step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    evaluate: Callable[[Params, Batch, jax.Array], dict[str, jax.Array]] | None
    sample: Callable[..., jax.Array]
    log_prob: Callable[[Params, jax.Array], jax.Array] | None = None
    eval_params: Callable[[TrainState], Params] | None = None
    summarize: Callable[[dict[str, Any]], dict[str, float]] | None = None


def eval_params(task: Task, state: TrainState) -> Params:
    """The params that ``task``'s evaluate, sample and log_prob take, from ``state``."""
    return state.eval_params() if task.eval_params is None else task.eval_params(state)
