"""Sampling from a trained run: rebuild its task from ``config.json`` and restore its weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np

from gen.data.loaders import load as load_data
from gen.data.pipeline import Pipeline
from gen.data.preprocess import make_preprocess
from gen.data.source import DataSpec
from gen.errors import CheckpointError, ConfigError
from gen.train import checkpoint as ckpt
from gen.train import mesh as mesh_lib
from gen.train.loop import BuildTask, restore_state


def sample_workdir(
    workdir: str | Path,
    num: int,
    seed: int,
    build_task: BuildTask,
    chunk: int | None = None,
    labels: Sequence[int] | None = None,
) -> tuple[np.ndarray, DataSpec]:
    """``num`` samples, in data units, from the latest checkpoint in ``workdir``.

    Uses the EMA params where the run kept them. Samples are drawn in chunks of ``chunk``
    (default: the run's batch size) with keys ``fold_in(PRNGKey(seed), chunk_index)``.
    ``labels`` (class-conditional runs only) splits the samples into ``len(labels)`` equal
    consecutive groups, one per label: ``num=100, labels=range(10)`` gives a 10x10 grid with one
    row per class. Without it a conditional run samples uniformly random classes.
    """
    workdir = Path(workdir)
    if num < 1:
        raise ConfigError(f"--num must be a positive integer, got {num}.")
    config_path = workdir / "config.json"
    step = ckpt.latest_step(workdir)
    if not config_path.is_file() or step is None:
        raise CheckpointError(
            f"{workdir} holds no trained run (config.json and checkpoints/); train one first with "
            f"python -m experiments.run --config ... --workdir {workdir}."
        )
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    if labels is not None and not config.model.get("class_conditional", False):
        raise ConfigError(
            f"--labels needs a class-conditional run; {workdir} was trained without "
            "model.class_conditional=True."
        )
    dataset = load_data(config.data)
    per_sample = None
    if labels is not None:
        classes = dataset.spec.num_classes or 0
        bad = [int(c) for c in labels if not 0 <= int(c) < classes]
        if not len(labels) or bad:
            raise ConfigError(
                f"--labels must be class indices in 0..{classes - 1}, got {list(labels)}."
            )
        per_sample = np.asarray(labels, np.int32)[np.arange(num) * len(labels) // num]
    preprocess = make_preprocess(dataset.spec, config.data)
    task = build_task(config, dataset.spec)
    mesh = mesh_lib.make_mesh()
    pipeline = Pipeline(dataset.train, config.batch_size, config.seed, jax.process_index(),
                        jax.process_count())
    state = restore_state(config, task, preprocess, pipeline, mesh, workdir, step)
    params = state.eval_params()
    chunk = chunk or config.batch_size
    sample = jax.jit(task.sample, static_argnums=2)
    key = jax.random.PRNGKey(seed)
    parts = []
    for i, start in enumerate(range(0, num, chunk)):
        n = min(chunk, num - start)
        y = None if per_sample is None else per_sample[start:start + n]
        parts.append(np.asarray(sample(params, jax.random.fold_in(key, i), n, y)))
    return preprocess.postprocess(np.concatenate(parts)), dataset.spec
