"""A real multi-process run: two processes on localhost, 4 CPU devices each, through
``jax.distributed``, started with the environment variables a user sets (README, Scaling out).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xla_flags import xla_flags

from gen.train.writers import read_metrics

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("multiprocess")

ROOT = Path(__file__).parents[1]
ARGS = [
    "--config", "experiments/configs/quickstart.py", "--config.num_steps=20",
    "--config.batch_size=64", "--config.log_every=5", "--config.checkpoint_every=10",
    "--config.eval_every=20", "--config.data.num_train=2000", "--config.data.num_test=256",
    "--config.model.num_layers=2", "--config.model.hidden=(16,16)", "--config.num_samples=100",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def env(devices: int, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    e.update(JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(devices),
             JAX_DISABLE_MOST_OPTIMIZATIONS="true", **extra)  # as in this process (conftest.py)
    return e


def run_two_processes(workdir: Path, *args: str) -> None:
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "experiments.run", *ARGS, "--workdir", str(workdir), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env(4, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                    JAX_PROCESS_ID=str(i)))
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-2000:]
    assert "done at step" in outputs[1]  # process 1 ran to the end too


def losses(workdir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(workdir)}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The same run in this process: one process, the 8 devices of conftest.py."""
    from gen.config import get_config, parse_overrides
    from gen.models import build_task
    from gen.train.loop import train_and_evaluate

    overrides, rest = parse_overrides(ARGS)
    workdir = tmp_path_factory.mktemp("one_process")
    train_and_evaluate(get_config(rest[1], overrides), workdir, build_task)
    return workdir


def assert_same_run(two: Path, one: Path) -> None:
    assert list(losses(two)) == [5, 10, 15, 20]
    np.testing.assert_allclose(list(losses(two).values()), list(losses(one).values()), atol=1e-5)
    eval_one = json.loads((one / "eval.json").read_text())
    eval_two = json.loads((two / "eval.json").read_text())
    assert eval_two["test_nll"] == pytest.approx(eval_one["test_nll"], abs=1e-5)


def test_two_processes_match_one_process(one_process, tmp_path):
    run_two_processes(tmp_path)
    assert_same_run(tmp_path, one_process)


@pytest.mark.slow
def test_two_processes_stopped_and_resumed_match_one_process(one_process, tmp_path):
    run_two_processes(tmp_path, "--config.num_steps=10")
    assert list(losses(tmp_path)) == [5, 10]
    run_two_processes(tmp_path)  # the same two commands resume at step 10
    assert_same_run(tmp_path, one_process)
