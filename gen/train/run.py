"""Open a finished run: ``load_run(workdir)`` rebuilds its task from the workdir's files alone.

    from gen.train import load_run

    run = load_run("/tmp/quickstart")
    x = run.sample(1000)                  # data units: float32 vectors, uint8 pixels for images
    log_p = run.log_prob(x)               # where the family has a density (flows, 2-D FM)

The config comes from ``config.json``, the data's shapes from ``data_spec.json`` (so the training
data need not exist any more), and the weights from the latest checkpoint (or ``step``), with
the EMA in place of what it averages.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen.data.preprocess import Preprocess, make_preprocess
from gen.data.source import DataSpec
from gen.errors import CheckpointError, ConfigError, SampleError
from gen.train import checkpoint as ckpt
from gen.train import mesh as mesh_lib
from gen.train import run_files
from gen.train.loop import BuildTask, restore_state
from gen.train.state import TrainState
from gen.train.task import Task, eval_params


@dataclasses.dataclass
class Run:
    """A trained run, restored from its workdir.

    Attributes:
      workdir: the run's folder.
      config: the resolved config it was trained with.
      spec: what one example of its data looks like.
      step: the step of the restored checkpoint.
      state: the whole restored :class:`TrainState`.
      params: what the family samples and evaluates with (the EMA where there is one).
      task: the family's :class:`Task`.
      preprocess: the run's data preprocessing (``postprocess`` maps samples to data units).
    """

    workdir: Path
    config: ml_collections.ConfigDict
    spec: DataSpec
    step: int
    state: TrainState
    params: Any
    task: Task
    preprocess: Preprocess

    def __post_init__(self) -> None:
        self._sample = jax.jit(self.task.sample, static_argnums=2)
        self._log_prob = None if self.task.log_prob is None else jax.jit(self.task.log_prob)

    @property
    def class_conditional(self) -> bool:
        return bool(self.config.model.get("class_conditional", False))

    def sample(
        self,
        num: int,
        key: jax.Array | int | None = None,
        labels: int | Sequence[int] | np.ndarray | None = None,
        chunk: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """``num`` samples in data units (float32 vectors; uint8 pixels for images).

        Args:
          num: how many.
          key: a PRNG key or an integer seed (default 0). Chunk ``i`` uses ``fold_in(key, i)``.
          labels: class-conditional runs only: one class for all samples, or a sequence of
            classes split into equal consecutive groups (``num`` labels: one per sample;
            ``num=100, labels=range(10)``: ten rows of one class each). Without it, a
            conditional run samples uniformly random classes.
          chunk: samples per compiled call (default: the run's batch size).
          progress: called with the number of samples drawn after each chunk.

        Raises :class:`~gen.errors.SampleError` when a sample is NaN or infinite (a run that
        diverged), rather than returning pixels cast from NaN.
        """
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"num must be a positive integer, got {num!r}.")
        key = jax.random.PRNGKey(0 if key is None else key) if _is_seed(key) else key
        per_sample = None if labels is None else self._labels(num, labels)
        chunk = chunk or int(self.config.batch_size)
        parts = []
        for i, start in enumerate(range(0, num, chunk)):
            n = min(chunk, num - start)
            y = None if per_sample is None else jnp.asarray(per_sample[start:start + n])
            part = np.asarray(self._sample(self.params, jax.random.fold_in(key, i), n, y))
            if not np.isfinite(part).all():
                raise SampleError(
                    f"the samples of {self.workdir} at step {self.step} hold NaN or infinite "
                    "values; the run diverged or its weights are broken.")
            parts.append(part)
            if progress is not None:
                progress(n)
        return self.preprocess.postprocess(np.concatenate(parts))

    def log_prob(self, x: np.ndarray | jax.Array, chunk: int | None = None) -> np.ndarray:
        """Log-densities in nats of model-space events ``x`` ``(N, *shape)``, in chunks.

        For vector data, model space is data space. For images it is the preprocessed pixels
        (``run.preprocess.apply``), and the result is the density of those, not bits/dim.
        """
        if self._log_prob is None:
            raise ConfigError(
                f"model.name={self.config.model.get('name')!r} gives no log-density here; "
                "its eval.json holds its test likelihood or bound.")
        x = np.asarray(x)
        if x.shape[1:] != self.spec.shape:
            raise ValueError(f"log_prob expects events of shape (N, {self.spec.shape}), got "
                             f"{x.shape}.")
        chunk = chunk or int(self.config.get("eval_batch_size", self.config.batch_size))
        return np.concatenate([np.asarray(self._log_prob(self.params, jnp.asarray(x[i:i + chunk])))
                               for i in range(0, len(x), chunk)])

    def _labels(self, num: int, labels) -> np.ndarray:
        if not self.class_conditional:
            raise ConfigError(
                f"labels need a class-conditional run; {self.workdir} was trained without "
                "model.class_conditional=True.")
        labels = np.atleast_1d(np.asarray(labels))
        classes = self.spec.num_classes or 0
        if not labels.size or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (
                labels.min() < 0 or labels.max() >= classes):
            raise ConfigError(
                f"labels must be class indices in 0..{classes - 1}, got {labels.tolist()}.")
        return labels.astype(np.int32)[np.arange(num) * len(labels) // num]


def _is_seed(key: Any) -> bool:
    return key is None or isinstance(key, (int, np.integer))


def load_run(workdir: str | Path, step: int | None = None,
             build_task: BuildTask | None = None) -> Run:
    """Opens the run in ``workdir`` at its latest checkpoint (or at ``step``).

    ``build_task`` defaults to the model registry, ``gen.models.build_task``. The training
    data is not read when the workdir holds ``data_spec.json`` (every run of this release).
    """
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    latest = ckpt.latest_step(workdir)
    if not config_path.is_file() or latest is None:
        raise CheckpointError(
            f"{workdir} holds no trained run (config.json and checkpoints/); train one first with "
            f"python -m experiments.run --config ... --workdir {workdir}.")
    available = ckpt.all_steps(workdir)
    if step is not None and step not in available:
        raise CheckpointError(
            f"{workdir} has no checkpoint at step {step}; it has steps {available}.")
    if build_task is None:
        from gen.models import build_task
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    saved = run_files.load_spec(workdir)
    if saved is not None:
        spec, dtypes = saved
        batch = run_files.example_batch(spec, dtypes, int(config.batch_size))
    else:  # a run from before data_spec.json: its data must still be there
        from gen.data.loaders import load as load_data
        from gen.data.pipeline import Pipeline

        dataset = load_data(config.data)
        spec = dataset.spec
        batch = Pipeline(dataset.train, config.batch_size, config.seed).batch(0)
    task = build_task(config, spec)
    preprocess = make_preprocess(spec, config.data)
    state = restore_state(config, task, preprocess, batch, mesh_lib.make_mesh(), workdir, step)
    return Run(workdir, config, spec, int(jax.device_get(state.step)), state,
               eval_params(task, state), task, preprocess)
