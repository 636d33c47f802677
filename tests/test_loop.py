"""The generic loop end to end, in process, on the 8-device CPU mesh of conftest.py."""

import hashlib
import json
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import run
from gen.config import get_config
from gen.errors import NonFiniteLossError
from gen.models import build_task
from gen.train import loop
from gen.train.writers import read_metrics

QUICKSTART = "experiments/configs/quickstart.py"


def tiny_config(**overrides):
    config = get_config(QUICKSTART)
    config.num_steps = 30
    config.batch_size = 64
    config.log_every = 5
    config.checkpoint_every = 10
    config.eval_every = 15
    config.num_samples = 200
    config.data.num_train = 2000
    config.data.num_test = 256
    config.model.num_layers = 2
    config.model.hidden = (16, 16)
    for key, value in overrides.items():
        node = config
        *path, leaf = key.split(".")
        for part in path:
            node = node[part]
        node[leaf] = value
    return config


def loss_at(workdir, step):
    return next(r["loss"] for r in read_metrics(workdir) if r["step"] == step and "loss" in r)


def snapshot(workdir: Path) -> dict[str, str]:
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(workdir.rglob("*")) if p.is_file()}


def test_run_writes_every_output(tmp_path):
    assert jax.device_count() == 8
    result = loop.train_and_evaluate(tiny_config(), tmp_path, build_task)
    assert result.status == "done" and result.step == 30
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]  # one record per logged step
    assert all(np.isfinite(r["loss"]) for r in records)
    assert "test_nll" in records[2] and "test_nll" in records[-1]
    assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 30
    assert json.loads((tmp_path / "eval.json").read_text()) == {
        "step": 30, "test_nll": pytest.approx(result.eval["test_nll"])}
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "0000015.png", "0000030.png"]
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [10, 20, 30]


def test_test_nll_matches_a_direct_computation(tmp_path):
    config = tiny_config(num_steps=10)
    result = loop.train_and_evaluate(config, tmp_path, build_task)
    from gen.data.loaders import load
    from gen.data.pipeline import Pipeline
    from gen.data.preprocess import make_preprocess
    from gen.train.mesh import make_mesh

    data = load(config.data)
    task = build_task(config, data.spec)
    state = loop.restore_state(config, task, make_preprocess(data.spec, config.data),
                               Pipeline(data.train, 64, 0).batch(0), make_mesh(), tmp_path)
    x = data.test[np.arange(len(data.test))]["x"]
    direct = -np.mean(np.asarray(task.log_prob(state.params, x), np.float64))
    assert result.eval["test_nll"] == pytest.approx(direct, rel=1e-5)


def test_stopped_run_resumes_bit_for_bit(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    loop.train_and_evaluate(tiny_config(), full, build_task)
    loop.train_and_evaluate(tiny_config(num_steps=20), part, build_task)
    loop.train_and_evaluate(tiny_config(), part, build_task)  # resumes at 20
    assert [r["step"] for r in read_metrics(part)] == [5, 10, 15, 20, 25, 30]
    for step in (25, 30):
        assert loss_at(part, step) == loss_at(full, step)
    a = json.loads((full / "eval.json").read_text())
    b = json.loads((part / "eval.json").read_text())
    assert a == b


def test_sigterm_checkpoints_and_returns(tmp_path):
    config = tiny_config()
    base = build_task

    def signalling_task(config, spec):
        task = base(config, spec)

        def step(state, batch, key):
            jax.debug.callback(
                lambda s: os.kill(os.getpid(), signal.SIGTERM) if s == 12 else None, state.step)
            return task.step(state, batch, key)

        return task._replace(step=step)

    result = loop.train_and_evaluate(config, tmp_path, signalling_task)
    assert result.status == "stopped" and 13 <= result.step < 30
    assert int((tmp_path / "checkpoints").exists())
    assert max(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == result.step
    # the rerun continues to the end and matches an uninterrupted run
    loop.train_and_evaluate(config, tmp_path, build_task)
    loop.train_and_evaluate(config, tmp_path / "ref", build_task)
    assert loss_at(tmp_path, 30) == loss_at(tmp_path / "ref", 30)


def test_nan_loss_stops_and_names_the_step(tmp_path):
    import jax.numpy as jnp

    def nan_task(config, spec):
        task = build_task(config, spec)

        def step(state, batch, key):
            state, metrics = task.step(state, batch, key)
            bad = jnp.where(state.step == 16, jnp.nan, 0.0)  # state.step: updates before this one
            return state, {**metrics, "loss": metrics["loss"] + bad}

        return task._replace(step=step)

    with pytest.raises(NonFiniteLossError, match="loss is nan at step 17") as e:
        loop.train_and_evaluate(tiny_config(), tmp_path, nan_task)
    assert "last good checkpoint (step 10)" in str(e.value)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [10]


def main_error(argv, capsys) -> str:
    code = run.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("override,match", [
    ("--config.num_steps=0", "num_steps must be a positive integer"),
    ("--config.batch_size=-8", "batch_size must be a positive integer"),
    ("--config.batch_size=12", "not divisible by the 8 devices"),
    ("--config.data.name=spirals3", "spirals3"),
    ("--config.data.source=hdf5", "hdf5"),
    ("--config.model.name=pixelcnn", "model.name='pixelcnn' is not a known model"),
    ("--config.nope=1", "unknown config key 'nope'"),
])
def test_bad_config_is_refused_without_touching_the_workdir(tmp_path, capsys, override, match):
    workdir = tmp_path / "w"
    err = main_error(["--config", QUICKSTART, "--workdir", str(workdir), override], capsys)
    assert match in err
    assert not workdir.exists()


def test_unknown_config_file(tmp_path, capsys):
    err = main_error(["--config", "experiments/configs/nope.py", "--workdir", str(tmp_path)],
                     capsys)
    assert "does not exist" in err


@pytest.mark.parametrize("files", ["missing", "malformed"])
def test_bad_data_files(tmp_path, capsys, files):
    path = tmp_path / "train.npy"
    if files == "malformed":
        path.write_bytes(b"this is not an npy file")
    workdir = tmp_path / "w"
    err = main_error(["--config", QUICKSTART, "--workdir", str(workdir),
                      "--config.data.source=npy", f"--config.data.path={path}"], capsys)
    assert str(path) in err
    assert not workdir.exists()


def test_incompatible_checkpoints_are_refused_and_kept(tmp_path, capsys):
    loop.train_and_evaluate(tiny_config(num_steps=10), tmp_path, build_task)
    before = snapshot(tmp_path)
    argv = ["--config", QUICKSTART, "--workdir", str(tmp_path), "--config.num_steps=20",
            "--config.batch_size=64", "--config.data.num_train=2000", "--config.data.num_test=256",
            "--config.model.num_layers=2", "--config.model.hidden=(32,32)",
            "--config.log_every=5", "--config.checkpoint_every=10", "--config.eval_every=15",
            "--config.num_samples=200"]
    err = main_error(argv, capsys)
    assert "different config" in err and "model.hidden" in err
    assert snapshot(tmp_path) == before
