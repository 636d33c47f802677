"""Sampling from a trained run: rebuild its task from ``config.json`` and restore its weights."""

from __future__ import annotations

import json
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
    workdir: str | Path, num: int, seed: int, build_task: BuildTask, chunk: int | None = None
) -> tuple[np.ndarray, DataSpec]:
    """``num`` samples, in data units, from the latest checkpoint in ``workdir``.

    Uses the EMA params where the run kept them. Samples are drawn in chunks of ``chunk``
    (default: the run's batch size) with keys ``fold_in(PRNGKey(seed), chunk_index)``.
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
    dataset = load_data(config.data)
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
        parts.append(np.asarray(sample(params, jax.random.fold_in(key, i), n)))
    return preprocess.postprocess(np.concatenate(parts)), dataset.spec
