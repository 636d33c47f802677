"""Asynchronous orbax checkpoints of the train state, keeping the last N."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from gen.errors import CheckpointError
from gen.train.state import TrainState


def checkpoint_dir(workdir: str | Path) -> Path:
    return Path(workdir).absolute() / "checkpoints"


def all_steps(workdir: str | Path) -> list[int]:
    """The steps of the complete checkpoints in ``workdir``, ascending."""
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        return []
    return sorted(ocp.utils.checkpoint_steps(directory))


def latest_step(workdir: str | Path) -> int | None:
    """The step of the newest complete checkpoint in ``workdir``, or ``None``."""
    steps = all_steps(workdir)
    return steps[-1] if steps else None


class _StandardHandler(ocp.StandardCheckpointHandler):
    """orbax's standard handler, except that with one process every replicated array is written
    by one replica (orbax otherwise splits each replicated array into one slice per device, a
    dispatched slice op per device and array: seconds per save on a CPU with fake devices, and
    nothing gained when one host writes everything anyway). Several processes keep orbax's
    replica-parallel writes. Checkpoints written either way restore either way."""

    def __init__(self):
        super().__init__()
        if jax.process_count() == 1:
            th = ocp.type_handlers
            scalar = th.ScalarHandler()
            registry = th.create_type_handler_registry(
                (int, scalar), (float, scalar), (np.number, scalar),
                (np.ndarray, th.NumpyHandler()),
                (jax.Array, th.ArrayHandler(use_replica_parallel=False)))
            self._impl = ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    handler = _StandardHandler()
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    registry.add(None, ocp.args.StandardSave, handler)
    registry.add(None, ocp.args.StandardRestore, handler)
    return registry


class Checkpointer:
    """Saves :class:`TrainState` under ``workdir/checkpoints/<step>`` in the background.

    Saves are atomic (orbax writes to a temporary folder and renames it when complete), so a run
    killed mid-save resumes from the previous complete checkpoint.
    """

    def __init__(self, workdir: str | Path, max_to_keep: int = 3, asynchronous: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=asynchronous
        )
        self.directory = checkpoint_dir(workdir)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              handler_registry=_handler_registry())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState) -> None:
        """Starts saving ``state`` at its step; returns before the write completes."""
        step = int(jax.device_get(state.step))
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, target: TrainState, step: int | None = None) -> TrainState:
        """Restores onto the shapes, dtypes and shardings of ``target`` (arrays or abstract)."""
        step = self._manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as e:
            error = e
        if not jax.tree.leaves(abstract.model_state):
            # Written before TrainState had model_state (gen 0.1.0 runs): same state otherwise.
            fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)
                      if f.name not in ("model_state", "ema_part")}
            try:
                old = self._manager.restore(step, args=ocp.args.StandardRestore(fields))
                return abstract.replace(**old)
            except (ValueError, KeyError, TypeError):
                pass
        raise CheckpointError(
            f"the checkpoint at step {step} in {self.directory} does not fit this config's "
            f"model ({str(error).splitlines()[0][:200]}); use a new --workdir."
        ) from error

    def wait(self) -> None:
        """Blocks until every started save has been written."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
