"""Every experiment config: its docstring states its target, and it trains end to end when tiny."""

import json
from pathlib import Path

import numpy as np
import pytest

from gen.config import load_config_file
from gen.models import build_task
from gen.train import loop

ROOT = Path(__file__).parents[1]
CONFIGS = sorted(p for p in (ROOT / "experiments" / "configs").glob("*.py")
                 if p.stem != "__init__")
MNIST = ROOT.parent / "shared" / "data" / "mnist"

# Size keys shrunk wherever a config has them: (section, key) -> tiny value.
TINY = {
    (None, "num_steps"): 2, (None, "batch_size"): 16, (None, "eval_batch_size"): 16,
    (None, "num_eval_examples"): 16, (None, "num_samples"): 4, (None, "log_every"): 1,
    (None, "checkpoint_every"): 2, (None, "eval_every"): 2,
    ("data", "num_train"): 256, ("data", "num_test"): 32,
    ("model", "hidden"): (8, 8), ("model", "width"): 16, ("model", "num_blocks"): 1,
    ("model", "num_layers"): 2, ("model", "hidden_channels"): 8, ("model", "num_steps"): 1,
    ("model", "ch"): 8, ("model", "num_res_blocks"): 1, ("model", "num_groups"): 4,
    ("model", "attn_resolutions"): (), ("model", "num_train_steps"): 10,
    ("sampler", "num_steps"): 2,
}


def shrink(config) -> None:
    """Sets every size key of ``TINY`` that ``config`` has, in place."""
    for (section, key), value in TINY.items():
        node = config if section is None else config.get(section)
        if node is not None and key in node:
            node[key] = type(node[key])(value) if isinstance(node[key], tuple) else value


def test_there_are_configs():
    assert {"quickstart", "nsf_toy2d", "ddpm_toy2d", "fm_toy2d"} <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_docstring_states_command_runtime_and_expected_result(path):
    load_config_file(path)  # imports, and returns a ConfigDict
    text = path.read_text().split('"""')[1]
    assert f"--config experiments/configs/{path.name}" in text
    assert "Runtime" in text or "Hardware" in text or "hardware" in text
    assert "Expected" in text or "Target" in text


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_evaluates_and_samples_at_tiny_size(path, tmp_path):
    config = load_config_file(path)
    shrink(config)
    if "schedule_kwargs" in config.model and "num_steps" in config.model.schedule_kwargs:
        config.model.schedule_kwargs.num_steps = 10
    if config.data.source == "tfds":
        pytest.skip("TFDS data is not prepared here (the tfds loader is tested with mock data)")
    if config.data.source == "idx":
        if not MNIST.is_dir():
            pytest.skip("../shared/data/mnist is absent")
        config.data.path = str(MNIST)
        config.data.train_split, config.data.test_split = "test[:64]", "test[64:96]"
    result = loop.train_and_evaluate(config, tmp_path, build_task)
    assert result.status == "done" and result.step == 2
    metric = next(v for k, v in result.eval.items() if k.startswith("test_"))
    assert np.isfinite(metric)
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 2
    assert list((tmp_path / "samples").glob("*.png"))


@pytest.mark.parametrize("name", ["nsf_toy2d", "ddpm_toy2d", "fm_toy2d"])
def test_toy_configs_train_on_a_users_npy_array_and_sample(tmp_path, name):
    from gen.train.sampling import sample_workdir

    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 2)).astype(np.float32) * [1.0, 0.3] + [2.0, -1.0]
    np.save(tmp_path / "train.npy", train)
    config = load_config_file(ROOT / "experiments" / "configs" / f"{name}.py")
    shrink(config)
    if "schedule_kwargs" in config.model:
        config.model.schedule_kwargs.num_steps = 10
    config.data.source, config.data.path = "npy", str(tmp_path / "train.npy")
    workdir = tmp_path / "run"
    loop.train_and_evaluate(config, workdir, build_task)
    samples, spec = sample_workdir(workdir, 12, 0, build_task)
    assert spec.shape == (2,) and samples.shape == (12, 2) and np.all(np.isfinite(samples))


def test_class_conditional_run_samples_the_requested_labels(tmp_path):
    from gen.errors import ConfigError
    from gen.train.sampling import sample_workdir

    config = load_config_file(ROOT / "experiments" / "configs" / "ddpm_digits_cfg.py")
    shrink(config)
    config.model.schedule_kwargs.num_steps = 10
    workdir = tmp_path / "run"
    loop.train_and_evaluate(config, workdir, build_task)
    samples, spec = sample_workdir(workdir, 6, 0, build_task, labels=[3, 7])
    assert samples.shape == (6, 8, 8, 1) and spec.num_classes == 10
    with pytest.raises(ConfigError, match=r"class indices in 0\.\.9"):
        sample_workdir(workdir, 2, 0, build_task, labels=[10])
