"""The two commands as a user runs them, in subprocesses: train, sample, kill, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from xla_flags import xla_flags

from gen.train.writers import read_metrics

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("cli")

ROOT = Path(__file__).parents[1]
QUICKSTART = "experiments/configs/quickstart.py"
# 300 steps of a small model, checkpointing every 100: the numbers of the "Done when" check.
SMALL = [
    "--config.num_steps=300", "--config.batch_size=512", "--config.log_every=50",
    "--config.checkpoint_every=100", "--config.eval_every=300", "--config.num_samples=500",
    "--config.data.num_train=5000", "--config.data.num_test=500",
    "--config.model.num_layers=4", "--config.model.hidden=(64,64)",
]


def env(devices: int) -> dict[str, str]:
    e = dict(os.environ)
    e["XLA_FLAGS"] = xla_flags(devices)
    e["JAX_PLATFORMS"] = "cpu"
    return e


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"experiments.{module}", *args]


def train(workdir, *args, devices=1, **kw) -> subprocess.CompletedProcess:
    cmd = command("run", "--config", QUICKSTART, "--workdir", str(workdir), *SMALL, *args)
    return subprocess.run(cmd, cwd=ROOT, env=env(devices), capture_output=True, text=True,
                          timeout=300, **kw)


def loss_at(workdir, step):
    return next(r["loss"] for r in read_metrics(workdir) if r["step"] == step)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 300-step run."""
    workdir = tmp_path_factory.mktemp("reference")
    proc = train(workdir)
    assert proc.returncode == 0, proc.stderr
    return workdir


def test_quickstart_outputs_and_sampling(reference, tmp_path):
    for name in ("config.json", "metrics.jsonl", "eval.json", "checkpoints"):
        assert (reference / name).exists(), name
    assert list(reference.glob("events.out.tfevents.*"))
    assert list((reference / "samples").glob("*.png"))
    assert np.isfinite(json.loads((reference / "eval.json").read_text())["test_nll"])
    out = tmp_path / "s.npy"
    proc = subprocess.run(command("sample", "--workdir", str(reference), "--num", "64",
                                  "--out", str(out)), cwd=ROOT, env=env(1), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    samples = np.load(out)
    assert samples.shape == (64, 2) and samples.dtype == np.float32
    assert np.all(np.isfinite(samples))
    assert samples.std() > 0.1  # not collapsed


def test_sample_refuses_bad_input(reference, tmp_path):
    cases = [
        (["--workdir", str(tmp_path), "--num", "4", "--out", str(tmp_path / "a.npy")],
         "holds no trained run"),
        (["--workdir", str(reference), "--num", "0", "--out", str(tmp_path / "a.npy")],
         "--num must be a positive integer"),
        (["--workdir", str(reference), "--num", "4", "--out", str(tmp_path / "a.txt")],
         "must end in .npy"),
    ]
    for args, match in cases:
        proc = subprocess.run(command("sample", *args), cwd=ROOT, env=env(1),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and match in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1


@pytest.mark.slow  # resuming is checked by the SIGKILL and SIGTERM tests below
def test_stopped_at_200_then_rerun_matches(reference, tmp_path):
    assert train(tmp_path, "--config.num_steps=200").returncode == 0
    assert train(tmp_path).returncode == 0
    assert loss_at(tmp_path, 300) == loss_at(reference, 300)


def wait_for_checkpoint(workdir: Path, proc: subprocess.Popen, step: int) -> None:
    marker = workdir / "checkpoints" / str(step)
    deadline = time.time() + 240
    while not (marker.is_dir() and not marker.name.endswith(".tmp")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


@pytest.mark.slow  # kill -9 and resume: also tests/test_harness.py, at both moments that matter
def test_sigkill_after_a_checkpoint_then_rerun_matches(reference, tmp_path):
    # num_steps only sets where a run ends, so a far-off end makes sure the kill lands mid-run
    cmd = command("run", "--config", QUICKSTART, "--workdir", str(tmp_path), *SMALL,
                  "--config.num_steps=1000000")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(1), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(tmp_path, proc, 100)
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    rerun = train(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert loss_at(tmp_path, 300) == loss_at(reference, 300)


def test_sigterm_saves_and_exits_cleanly(reference, tmp_path):
    cmd = command("run", "--config", QUICKSTART, "--workdir", str(tmp_path), *SMALL,
                  "--config.num_steps=1000000")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(tmp_path, proc, 100)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    step = int(out.split("stopped at step ")[1].split(";")[0])
    assert 100 <= step < 300
    assert (tmp_path / "checkpoints" / str(step)).is_dir()  # saved on the way out
    assert train(tmp_path).returncode == 0
    assert loss_at(tmp_path, 300) == loss_at(reference, 300)


@pytest.mark.slow  # the multi-process test runs the same command on 2 x 4 devices by default
def test_quickstart_on_8_devices(tmp_path):
    proc = train(tmp_path, "--config.num_steps=20", "--config.log_every=10", devices=8)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20]
    assert np.isfinite(json.loads((tmp_path / "eval.json").read_text())["test_nll"])
