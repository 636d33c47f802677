"""The harness for several networks: multi-part state, exact resume, load_run, no lost rows.

The model is ``two_part_task``: a tiny GAN with two optimizers, BatchNorm statistics as model
state and an EMA of the generator only.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import two_part_task
from xla_flags import xla_flags

from gen.config import get_config
from gen.errors import CheckpointError, ConfigError
from gen.models import build_task
from gen.train import EMA, TrainState, apply_gradients, load_run, loop, optim_for_part
from gen.train.ema import update_ema
from gen.train.writers import read_metrics

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("harness")

ROOT = Path(__file__).parents[1]
TESTS = Path(__file__).parent
CONFIG = str(TESTS / "two_part_task.py")
QUICKSTART = "experiments/configs/quickstart.py"


def rows(workdir: Path) -> list[dict]:
    """The metrics rows without their wall-clock field."""
    return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(workdir)]


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def cli(*args: str, script: tuple[str, ...] = ("-m", "experiments.run"), **kw):
    # the same devices and XLA options as this process (conftest.py), so numbers compare exactly
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(TESTS), XLA_FLAGS=xla_flags(8),
               JAX_DISABLE_MOST_OPTIMIZATIONS="true")
    return subprocess.run([sys.executable, *script, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 20-step run of the two-part task, in process."""
    workdir = tmp_path_factory.mktemp("two_part_reference")
    loop.train_and_evaluate(get_config(CONFIG), workdir, build_task)
    return workdir


# --- TrainState, EMA and per-part optimizers --------------------------------------------------


def test_each_part_has_its_own_optimizer_and_only_its_own_moves():
    params = {"g": jnp.ones(3), "d": jnp.ones(2)}
    txs = {"g": optax.sgd(0.1), "d": optax.adam(0.5)}
    state = TrainState.create(params, txs, jax.random.PRNGKey(0))
    assert state.parts == ("g", "d") and state.model_state == {}
    moved = apply_gradients(state, jnp.ones(2), txs, part="d")
    np.testing.assert_array_equal(moved.params["g"], params["g"])
    np.testing.assert_allclose(moved.params["d"], 0.5, rtol=1e-5)  # adam: 1 - lr * sign(g)
    assert leaves_equal(moved.opt_state["g"], state.opt_state["g"])
    moved = apply_gradients(moved, jnp.ones(3), txs, part="g")
    np.testing.assert_allclose(moved.params["g"], 0.9)
    with pytest.raises(ValueError, match="no such part"):
        apply_gradients(state, jnp.ones(2), txs, part="encoder")
    with pytest.raises(ValueError, match="same parts"):
        TrainState.create({"g": jnp.ones(3)}, txs, jax.random.PRNGKey(0))


def test_ema_of_one_part_with_warm_up_against_a_direct_recurrence():
    params = {"g": jnp.zeros(2), "d": jnp.zeros(1)}
    ema = EMA(decay=0.9, start=3, part="g")
    state = TrainState.create(params, {"g": optax.sgd(1.0), "d": optax.sgd(1.0)},
                              jax.random.PRNGKey(0), ema=ema)
    assert jax.tree.structure(state.ema_params) == jax.tree.structure(params["g"])
    expected = np.zeros(2)
    for n in range(1, 8):  # train step n moves g to -n * [1, 2]
        state = apply_gradients(state, jnp.array([1.0, 2.0]), {"g": optax.sgd(1.0)}, part="g")
        state = update_ema(state, ema).replace(step=state.step + 1)
        p = -n * np.array([1.0, 2.0])
        expected = p if n <= 3 else expected + 0.1 * (p - expected)
        np.testing.assert_allclose(state.ema_params, expected, rtol=1e-6)
    evaluated = state.eval_params()
    np.testing.assert_allclose(evaluated["g"], expected, rtol=1e-6)
    np.testing.assert_array_equal(evaluated["d"], state.params["d"])


def test_optimizer_settings_per_part_override_the_shared_ones():
    optim = get_config(CONFIG).optim
    g, d = optim_for_part(optim, "generator"), optim_for_part(optim, "discriminator")
    assert (g.learning_rate, g.b1, g.name) == (2e-4, 0.5, "adam")
    assert (d.learning_rate, d.b1, d.b2) == (1e-3, 0.0, 0.9)
    assert optim_for_part(optim, "encoder").learning_rate == 1e-3  # no group: shared settings


def test_ema_settings_are_checked_before_the_workdir_is_touched(tmp_path):
    config = get_config(CONFIG)
    config.ema_decay = 1.5
    with pytest.raises(ConfigError, match=r"ema_decay must be in \[0, 1\)"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    config.ema_decay = 0.5

    def without_average(config, spec):
        config = config.copy_and_resolve_references()
        config.ema_decay = 0.0
        return two_part_task.build_task(config, spec)

    with pytest.raises(ConfigError, match="keeps no moving average"):
        loop.train_and_evaluate(config, tmp_path / "w", without_average)
    assert not (tmp_path / "w").exists()


# --- Exact resume of a multi-part model --------------------------------------------------------


def test_two_part_run_stopped_and_resumed_matches_to_the_last_digit(reference, tmp_path):
    config = get_config(CONFIG)
    config.num_steps = 10
    loop.train_and_evaluate(config, tmp_path, build_task)
    result = loop.train_and_evaluate(get_config(CONFIG), tmp_path, build_task)
    assert result.step == 20
    assert rows(tmp_path) == rows(reference)
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads(
        (reference / "eval.json").read_text())
    a, b = load_run(tmp_path), load_run(reference)
    assert leaves_equal(a.state, b.state)  # both optimizers, BatchNorm statistics, the EMA
    assert set(a.state.params) == {"generator", "discriminator"}
    assert jax.tree.leaves(a.state.model_state) and a.state.ema_part == "generator"
    assert not leaves_equal(a.state.ema_params, a.state.params["generator"])


def test_two_part_run_killed_after_a_checkpoint_resumes_exactly(reference, tmp_path):
    killed = cli("after_checkpoint", "10", "--", "--config", CONFIG, "--workdir", str(tmp_path),
                 script=(str(TESTS / "killed_run.py"),))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10"]
    rerun = cli("--config", CONFIG, "--workdir", str(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    assert rows(tmp_path) == rows(reference)
    assert leaves_equal(load_run(tmp_path).state, load_run(reference).state)


# --- No metrics row lost -----------------------------------------------------------------------


# Killed after the last row, before its checkpoint: by default. Killed after the last checkpoint,
# before the evaluation: in the slow run (the kill after the checkpoint of step 10 above resumes
# from a complete checkpoint by default).
@pytest.mark.parametrize("moment", ["after_row",
                                    pytest.param("after_checkpoint", marks=pytest.mark.slow)])
def test_a_run_killed_at_its_last_step_keeps_every_row_once(reference, tmp_path, moment):
    killed = cli(moment, "20", "--", "--config", CONFIG, "--workdir", str(tmp_path),
                 script=(str(TESTS / "killed_run.py"),))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "eval.json").exists()
    rerun = cli("--config", CONFIG, "--workdir", str(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    assert rows(tmp_path) == rows(reference)
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads(
        (reference / "eval.json").read_text())


# --- load_run ----------------------------------------------------------------------------------


def test_load_run_samples_without_the_training_data(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(256, 3)).astype(np.float32) + 4.0)
    config = get_config(QUICKSTART)
    for key, value in {"num_steps": 4, "batch_size": 64, "log_every": 2, "checkpoint_every": 2,
                       "eval_every": 4, "num_samples": 16, "model.num_layers": 2,
                       "model.hidden": (8, 8), "data.source": "npy",
                       "data.path": str(tmp_path / "train.npy")}.items():
        node, *path = [config, *key.split(".")]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    workdir = tmp_path / "run"
    loop.train_and_evaluate(config, workdir, build_task)
    (tmp_path / "train.npy").unlink()
    run = load_run(workdir)
    assert run.step == 4 and run.spec.shape == (3,) and run.config.data.source == "npy"
    x = run.sample(10, key=3)
    assert x.shape == (10, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, run.sample(10, key=jax.random.PRNGKey(3)))
    # In chunks (the last one short): chunk i draws with fold_in(key, i), so chunk 0 is the
    # unchunked draw of its size.
    chunked = run.sample(5, key=3, chunk=2)
    assert chunked.shape == (5, 3) and np.all(np.isfinite(chunked))
    np.testing.assert_array_equal(chunked[:2], run.sample(2, key=3))
    log_p = run.log_prob(x)
    direct = jax.vmap(lambda e: run.task.log_prob(run.params, e[None])[0])(jnp.asarray(x))
    np.testing.assert_allclose(log_p, direct, rtol=1e-5)
    assert load_run(workdir, step=2).step == 2
    with pytest.raises(CheckpointError, match="no checkpoint at step 3"):
        load_run(workdir, step=3)
    with pytest.raises(ConfigError, match="class-conditional"):
        run.sample(4, labels=[1])
    with pytest.raises(ValueError, match="events of shape"):
        run.log_prob(np.zeros((2, 2), np.float32))
    with pytest.raises(CheckpointError, match="holds no trained run"):
        load_run(tmp_path / "nothing")


def test_load_run_of_a_multi_part_run_uses_the_ema_and_the_model_state(reference):
    run = load_run(reference)
    assert set(run.params) == {"generator", "batch_stats"}
    assert leaves_equal(run.params["generator"], run.state.ema_params)
    samples = run.sample(8)
    assert samples.shape == (8, 2) and np.all(np.isfinite(samples))
    with pytest.raises(ConfigError, match="gives no log-density"):
        run.log_prob(samples)


def test_sample_command_uses_load_run(reference, tmp_path):
    out = tmp_path / "s.npy"
    proc = cli("--workdir", str(reference), "--num", "5", "--out", str(out),
               script=("-m", "experiments.sample"))
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(out), load_run(reference).sample(5, key=0))


# --- Checkpoints of gen 0.1.0 (before model_state) ---------------------------------------------


@flax.struct.dataclass
class _StateBeforeModelState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState
    rng: jax.Array
    ema_params: dict | None
    data_position: jax.Array


def test_checkpoints_without_model_state_stay_readable_and_resume(tmp_path):
    config = get_config(QUICKSTART)
    for key, value in {"num_steps": 6, "batch_size": 64, "log_every": 3, "checkpoint_every": 3,
                       "eval_every": 6, "num_samples": 16, "data.num_train": 512,
                       "data.num_test": 64, "model.num_layers": 2, "model.hidden": (8, 8)}.items():
        node, *path = [config, *key.split(".")]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    full, old = tmp_path / "full", tmp_path / "old"
    loop.train_and_evaluate(config, full, build_task)
    state = load_run(full, step=3).state
    # the same run at step 3, as gen 0.1.0 wrote it: no model_state, no data_spec.json
    manager = ocp.CheckpointManager(old / "checkpoints")
    old_state = _StateBeforeModelState(*(getattr(state, f) for f in (
        "step", "params", "opt_state", "rng", "ema_params", "data_position")))
    manager.save(3, args=ocp.args.StandardSave(old_state))
    manager.wait_until_finished()
    manager.close()
    (old / "config.json").write_text((full / "config.json").read_text())
    assert leaves_equal(load_run(old).state, state)
    loop.train_and_evaluate(config, old, build_task)  # resumes at 3
    assert [r["loss"] for r in read_metrics(old) if r["step"] == 6] == [
        r["loss"] for r in read_metrics(full) if r["step"] == 6]
