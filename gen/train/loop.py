"""The generic training loop: one jit-compiled step, sharded over a device mesh.

``train_and_evaluate(config, workdir, build_task)`` is the whole run:

1. validate the config and load the data (bad input fails here, before the workdir is touched);
2. resume from ``workdir/checkpoints`` when it holds any, else initialize;
3. run ``task.step`` compiled once with ``jax.jit`` (the batch sharded over the mesh's ``data``
   axis, the state replicated and donated), with step ``s`` keyed by ``fold_in(rng, s)``;
4. evaluate, draw samples, log to ``metrics.jsonl`` and TensorBoard, and checkpoint, on
   schedule; a step's metrics row is written before its checkpoint, so no row is ever lost;
5. write ``eval.json`` at the end.

A resumed run continues bit for bit: the batch at step ``s`` and the key of step ``s`` depend
only on the seed and ``s``. SIGTERM or SIGINT saves a checkpoint and returns cleanly. A
non-finite loss (any metric whose name contains ``loss``) raises :class:`NonFiniteLossError`
naming it and the step, keeping the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from gen.data.loaders import load as load_data
from gen.data.pipeline import Pipeline, eval_batches, to_global
from gen.data.preprocess import Preprocess, make_preprocess
from gen.data.source import DataSpec
from gen.errors import CheckpointError, ConfigError, NonFiniteLossError, SampleError
from gen.train import checkpoint as ckpt
from gen.train import mesh as mesh_lib
from gen.train import run_files, visualize
from gen.train import task as task_lib
from gen.train.state import TrainState
from gen.train.task import Task
from gen.train.writers import MetricsWriter, write_json

BuildTask = Callable[[ml_collections.ConfigDict, DataSpec], Task]

REQUIRED_KEYS = (
    "seed", "num_steps", "batch_size", "log_every", "checkpoint_every", "eval_every", "data",
    "model",
)
# Keys that may change between a run and its resumption: they set how long and how verbosely a
# run goes, not what it computes.
RUN_LENGTH_KEYS = frozenset({
    "num_steps", "log_every", "checkpoint_every", "eval_every", "keep_checkpoints", "num_samples",
    "density_grid", "num_eval_examples", "eval",
})


@dataclasses.dataclass
class RunResult:
    """How a run ended: ``status`` is ``"done"`` or ``"stopped"`` (by a signal)."""

    status: str
    step: int
    eval: dict[str, Any]


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises :class:`ConfigError` for missing keys and values that cannot work."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"the config lacks the keys {', '.join(missing)}; every config sets "
                          f"{', '.join(REQUIRED_KEYS)}.")
    for key in ("num_steps", "batch_size", "log_every", "checkpoint_every", "eval_every"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}.")
    devices, processes = jax.device_count(), jax.process_count()
    for key in ("batch_size", "eval_batch_size"):
        value = config.get(key, config.batch_size)
        if value % devices or value % processes:
            raise ConfigError(
                f"{key}={value} is not divisible by the {devices} devices; use a multiple of "
                f"{devices} (e.g. --config.{key}={max(devices, value // devices * devices)})."
            )


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_workdir(workdir: Path, config: ml_collections.ConfigDict) -> int | None:
    """Refuses a workdir that is not a folder or holds checkpoints of a different config.

    Returns the step of the checkpoint to resume from, or ``None`` for a fresh run.
    """
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} exists and is not a folder; choose another path.")
    step = ckpt.latest_step(workdir)
    saved = workdir / "config.json"
    if step is None or not saved.exists():
        return step
    try:
        old = _flatten(json.loads(saved.read_text()))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{saved} is not valid JSON ({e}); use a new --workdir.") from e
    new = _flatten(json.loads(config.to_json()))
    diff = sorted(
        k for k in old.keys() | new.keys()
        if k.split(".")[0] not in RUN_LENGTH_KEYS and old.get(k) != new.get(k)
    )
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise CheckpointError(
            f"{workdir} holds checkpoints (step {step}) of a different config ({shown}{more}); "
            "rerun with the same config to resume, or use a new --workdir."
        )
    return step


class _StopSignal:
    """Records SIGTERM/SIGINT so the loop can checkpoint and return at the next step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def requested(self, step: int) -> bool:
        if jax.process_count() > 1:  # every host must stop at the same step
            return multihost_utils.reached_preemption_sync_point(step)
        return self.signum is not None


class _Progress:
    """A progress bar on a terminal; a log line every ``log_every`` steps elsewhere."""

    def __init__(self, start: int, total: int, active: bool):
        self.total, self.active = total, active
        self.start_time, self.start = time.perf_counter(), start
        self.bar = None
        if active and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items()}, refresh=False)
            return
        rate = (step - self.start) / max(time.perf_counter() - self.start_time, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        fields = "  ".join(f"{k} {v:.4g}" for k, v in scalars.items())
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        print(f"step {step}/{self.total}  {fields}  {rate:.1f} steps/s  eta {eta_text}",
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _compile_step(task: Task, preprocess: Preprocess, mesh):
    replicated, sharded = mesh_lib.replicated(mesh), mesh_lib.data_sharded(mesh)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        k_data, k_step = jax.random.split(jax.random.fold_in(state.rng, state.step))
        new, metrics = task.step(state, preprocess.apply(batch, k_data), k_step)
        return new.replace(step=state.step + 1, data_position=state.data_position + 1), metrics

    return jax.jit(step, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                   donate_argnums=0)


class _Evaluator:
    """Test-set metrics and sample pictures, with fixed keys so evaluations are comparable."""

    def __init__(self, config, task: Task, preprocess: Preprocess, dataset, mesh,
                 sample_metrics=None):
        self.config, self.task, self.preprocess, self.dataset, self.mesh = (
            config, task, preprocess, dataset, mesh)
        self.sample_metrics = sample_metrics
        self.key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5EED)
        replicated, sharded = mesh_lib.replicated(mesh), mesh_lib.data_sharded(mesh)
        self._eval = None
        if task.evaluate is not None:
            def evaluate(params, batch, key):
                k_data, k_eval = jax.random.split(key)
                return task.evaluate(params, preprocess.apply(batch, k_data), k_eval)

            self._eval = jax.jit(evaluate, in_shardings=(replicated, sharded, replicated),
                                 out_shardings=sharded)
        self._sample = jax.jit(task.sample, static_argnums=2)
        self._log_prob = None if task.log_prob is None else jax.jit(task.log_prob)

    def metrics(self, params) -> dict[str, float]:
        """The test-set metrics (``test_*``) and, with ``config.eval.metrics``, the samples'."""
        results = self._test_metrics(params)
        if self.sample_metrics is not None:
            num = int(self.config.eval.get("num_samples", 1000))
            results.update(self.sample_metrics(self.samples(params, num, check=True)))
        return results

    def _test_metrics(self, params) -> dict[str, float]:
        if self._eval is None:
            return {}
        cfg = self.config
        sums: dict[str, Any] = {}
        count = 0.0
        batches = eval_batches(self.dataset.test, cfg.get("eval_batch_size", cfg.batch_size),
                               jax.process_index(), jax.process_count(),
                               cfg.get("num_eval_examples"))
        for i, (batch, mask) in enumerate(batches):
            out = self._eval(params, to_global(batch, self.mesh), jax.random.fold_in(self.key, i))
            out = {k: _gather(v) for k, v in out.items()}
            mask = _gather(mask)
            count += float(mask.sum())
            for k, v in out.items():
                v = np.asarray(v, np.float64)
                weighted = v * mask.reshape(mask.shape + (1,) * (v.ndim - 1))
                sums[k] = sums.get(k, 0.0) + np.sum(weighted, axis=0)
        results = {}
        means = {k: total / max(count, 1.0) for k, total in sums.items()}
        for k, mean in means.items():
            if np.ndim(mean):  # per-example vectors: for summarize only
                continue
            if k == "nll" and self.preprocess.log_scale is not None:
                bpd = self.preprocess.bits_per_dim(mean, self.dataset.spec.dim)
                results["test_bpd"] = float(bpd)
            else:
                results[f"test_{k}"] = float(mean)
        if self.task.summarize is not None and means:
            results.update({f"test_{k}": float(v) for k, v in self.task.summarize(means).items()})
        return results

    def samples(self, params, num: int, check: bool = False) -> np.ndarray:
        """``num`` samples in data units (uint8 pixels for images); ``check`` refuses NaN."""
        x = np.asarray(jax.device_get(self._sample(params, jax.random.fold_in(self.key, 1), num)))
        if check and not np.isfinite(x).all():
            raise SampleError("the model's samples hold NaN or infinite values, so "
                              "config.eval.metrics cannot be computed; the run is diverging.")
        return self.preprocess.postprocess(x)

    def save_pictures(self, params, path: Path, step: int) -> None:
        spec = self.dataset.spec
        samples = self.samples(params, int(self.config.get("num_samples", 64 if spec.kind ==
                                                            "image" else 2000)))
        if spec.kind == "image":
            visualize.save_image_grid(path, samples)
            return
        data = self.dataset.test[np.arange(min(len(self.dataset.test), len(samples)))]["x"]
        log_prob = None
        if self._log_prob is not None and spec.dim == 2:
            log_prob = lambda x: np.asarray(self._log_prob(params, jnp.asarray(x)))
        visualize.save_scatter(path, samples[:, :2], data[:, :2], log_prob, f"step {step}",
                               grid=int(self.config.get("density_grid", 200)))


def _gather(x: jax.Array | np.ndarray) -> np.ndarray:
    """Every process's rows of ``x`` (a batch-sharded array or a host array), on the host."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _sample_metrics(config, dataset):
    """The sample-quality metrics of ``config.eval.metrics`` (gen.metrics), or None."""
    names = config.get("eval", {}).get("metrics", ())
    if not names:
        return None
    from gen.metrics.sample_metrics import SampleMetrics, minimum_samples, parse_metrics

    names = parse_metrics(names)
    num = config.eval.get("num_samples", 1000)
    if not isinstance(num, int) or num < minimum_samples(names):
        raise ConfigError(f"eval.num_samples={num!r} is too few: {', '.join(names)} need at "
                          f"least {minimum_samples(names)}.")
    return SampleMetrics.build(config.data, dataset, names, ref=config.eval.get("ref", "test"),
                               ref_limit=config.eval.get("ref_num") or None)


def init_state(config, task: Task, preprocess: Preprocess, batch: dict, mesh,
               abstract: bool = False) -> TrainState:
    """The initial state, replicated over ``mesh`` (only its shapes when ``abstract``).

    ``batch`` is this process's slice of the first global batch (host arrays), or, with
    ``abstract``, ``jax.ShapeDtypeStruct``s of any batch (``run_files.example_batch``).
    """
    key = jax.random.PRNGKey(config.seed)
    replicated = mesh_lib.replicated(mesh)

    def init(key, batch):
        return task.init(key, preprocess.apply(batch, key))

    if not abstract:
        state = jax.jit(init, out_shardings=replicated)(key, to_global(batch, mesh))
    else:
        state = jax.eval_shape(init, key, batch)
    if float(config.get("ema_decay", 0.0)) > 0 and state.ema_params is None:
        raise ConfigError(
            f"ema_decay={config.ema_decay} is set, but model.name={config.model.get('name')!r} "
            "keeps no moving average; set --config.ema_decay=0.")
    if not abstract:
        return state
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), state)


def restore_state(config, task: Task, preprocess: Preprocess, batch: dict, mesh,
                  workdir: Path, step: int | None = None) -> TrainState:
    """The state saved in ``workdir`` at ``step`` (default: the latest), replicated.

    ``batch`` is any example batch, as host arrays or ``jax.ShapeDtypeStruct``s: only its
    shapes are used.
    """
    structs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
    target = init_state(config, task, preprocess, structs, mesh, abstract=True)
    checkpointer = ckpt.Checkpointer(workdir, config.get("keep_checkpoints", 3))
    try:
        return checkpointer.restore(target, step)
    finally:
        checkpointer.close()


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, build_task: BuildTask
) -> RunResult:
    """Trains ``config`` in ``workdir``, resuming it if it holds checkpoints (see the module)."""
    workdir = Path(workdir)
    validate_config(config)
    dataset = load_data(config.data)
    preprocess = make_preprocess(dataset.spec, config.data)
    task = build_task(config, dataset.spec)
    resume_step = check_workdir(workdir, config)

    mesh = mesh_lib.make_mesh()
    is_main = jax.process_index() == 0
    pipeline = Pipeline(dataset.train, config.batch_size, config.seed, jax.process_index(),
                        jax.process_count(), shuffle=config.data.get("shuffle", True))

    sample_metrics = _sample_metrics(config, dataset)
    first = pipeline.batch(0)
    if resume_step is None:
        state = init_state(config, task, preprocess, first, mesh)
    else:
        state = restore_state(config, task, preprocess, first, mesh, workdir, resume_step)

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "samples").mkdir(exist_ok=True)
    if is_main:
        write_json(workdir / "config.json", json.loads(config.to_json()))
        run_files.save_spec(workdir, dataset.spec, first)
    checkpointer = ckpt.Checkpointer(workdir, config.get("keep_checkpoints", 3))
    writer = MetricsWriter(workdir, resume_step or 0, active=is_main)
    evaluator = _Evaluator(config, task, preprocess, dataset, mesh, sample_metrics)
    train_step = _compile_step(task, preprocess, mesh)

    start = int(jax.device_get(state.step))
    # On fake CPU devices, overlapping all-reduce steps can deadlock: wait for each one there.
    sync_every_step = jax.default_backend() == "cpu" and jax.device_count() > 1
    progress = _Progress(start, config.num_steps, active=is_main)
    batches = pipeline.iterate(int(jax.device_get(state.data_position)))
    pending: tuple[int, dict] | None = None
    last_log_time, last_log_step, overhead = time.perf_counter(), start, 0.0
    status = "done"

    def check(item: tuple[int, dict]) -> dict[str, float]:
        step, metrics = item
        scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bad = {k: v for k, v in scalars.items() if "loss" in k and not math.isfinite(v)}
        if bad:
            checkpointer.close()
            good = checkpointer.latest_step()
            kept = f"the last good checkpoint (step {good}) is kept" if good else "no checkpoint"
            what = ", ".join(f"{k} is {v}" for k, v in bad.items())
            raise NonFiniteLossError(
                f"the {what} at step {step}; stopped, and {kept} in "
                f"{checkpointer.directory}. Try a lower optim.learning_rate or optim.grad_clip.")
        return scalars

    results: dict[str, Any] = {}
    try:
        with _StopSignal() as stop:
            for step in range(start + 1, config.num_steps + 1):
                state, metrics = train_step(state, to_global(next(batches), mesh))
                if pending is not None:  # one step behind, so the host does not stall the device
                    check(pending)
                pending = (step, metrics)
                if sync_every_step:
                    jax.block_until_ready(state)
                progress.update(step)
                stopping = stop.requested(step)
                final = step == config.num_steps
                is_log = step % config.log_every == 0 or final
                is_ckpt = step % config.checkpoint_every == 0 or final or stopping
                is_eval = step % config.eval_every == 0 or final
                if not (is_log or is_ckpt or is_eval):
                    continue
                scalars, pending = check(pending), None
                work_start = time.perf_counter()
                record: dict[str, float] = {}
                if is_log:  # steps_per_sec counts training, not evaluation and checkpoints
                    now = time.perf_counter()
                    rate = (step - last_log_step) / max(now - last_log_time - overhead, 1e-9)
                    last_log_time, last_log_step, overhead = now, step, 0.0
                    record.update(scalars, steps_per_sec=rate)
                    progress.log(step, scalars)
                if is_eval:
                    params = task_lib.eval_params(task, state)
                    results = {"step": step, **evaluator.metrics(params)}
                    record.update({k: v for k, v in results.items() if k != "step"})
                    if is_main:
                        evaluator.save_pictures(
                            params, workdir / "samples" / f"{step:07d}.png", step)
                # The row goes out before the checkpoint: a run killed in between resumes from
                # an earlier checkpoint, which drops the rows after it and writes them again.
                if record:
                    writer.write(step, record)
                if is_ckpt:
                    writer.flush()
                    checkpointer.save(state)
                overhead += time.perf_counter() - work_start
                if stopping:
                    status = "stopped"
                    break
    finally:
        batches.close()
        progress.close()
        checkpointer.close()
        writer.close()

    step = int(jax.device_get(state.step))
    if status == "stopped":
        return RunResult(status, step, {})
    if not results:  # resumed a run that had already finished: evaluate again
        params = task_lib.eval_params(task, state)
        results = {"step": step, **evaluator.metrics(params)}
        if is_main:
            evaluator.save_pictures(params, workdir / "samples" / f"{step:07d}.png", step)
    if is_main:
        write_json(workdir / "eval.json", results)
    return RunResult(status, step, results)
