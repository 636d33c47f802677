"""The generic harness: train state, the loop, checkpoints, and opening finished runs.

    from gen.train import load_run, train_and_evaluate

``gen.train`` knows nothing about any model family: a family hands it a :class:`Task`.
"""

from gen.train.ema import EMA, ema_from_config, update_ema
from gen.train.loop import RunResult, train_and_evaluate
from gen.train.optim import make_optimizer, optim_for_part
from gen.train.run import Run, load_run
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task

__all__ = [
    "EMA",
    "Run",
    "RunResult",
    "Task",
    "TrainState",
    "apply_gradients",
    "ema_from_config",
    "load_run",
    "make_optimizer",
    "optim_for_part",
    "train_and_evaluate",
    "update_ema",
]
