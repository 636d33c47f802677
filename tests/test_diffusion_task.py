"""The diffusion family's tasks end to end through the generic loop, at tiny settings."""

import json

import numpy as np
import pytest

from gen.config import get_config
from gen.errors import ConfigError
from gen.models import build_task
from gen.train import load_run, loop


def tiny(path: str, **overrides):
    config = get_config(path)
    config.num_steps = 6
    config.batch_size = 32
    config.log_every = 3
    config.checkpoint_every = 6
    config.eval_every = 6
    config.num_samples = 16
    config.num_eval_examples = 16
    config.eval_batch_size = 16
    config.data.num_train = 256
    config.data.num_test = 64
    config.model.width = 32
    config.model.num_blocks = 1
    config.sampler.num_steps = 4
    for key, value in overrides.items():
        node = config
        *parts, leaf = key.split(".")
        for part in parts:
            node = node[part]
        with node.unlocked():
            node[leaf] = value
    return config


@pytest.mark.parametrize("path", ["experiments/configs/ddpm_toy2d.py",
                                  "experiments/configs/fm_toy2d.py"])
def test_toy_configs_train_evaluate_and_sample(tmp_path, path):
    result = loop.train_and_evaluate(tiny(path), tmp_path, build_task)
    assert np.isfinite(result.eval["test_nll"])
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 6
    samples = load_run(tmp_path).sample(10, chunk=8)
    assert samples.shape == (10, 2) and np.all(np.isfinite(samples))


def test_ddpm_on_digits_reports_vlb_bits_per_dim_and_samples_images(tmp_path):
    config = tiny("experiments/configs/ddpm_toy2d.py")
    with config.unlocked():
        config.data = config.data.__class__({"source": "digits", "scale": "symmetric",
                                             "dequantize": "none"})
        config.model.ch = 8
        config.model.ch_mult = (1, 2)
        config.model.num_res_blocks = 1
        config.model.num_groups = 4
        config.model.num_train_steps = 20
        config.model.schedule_kwargs.num_steps = 20
        config.model.class_conditional = True
        config.model.guidance = True
        config.sampler.guidance_scale = 2.0
    result = loop.train_and_evaluate(config, tmp_path, build_task)
    # a 6-step model is far from the data (hundreds of bits/dim), but the bound is finite
    assert np.isfinite(result.eval["test_bpd"]) and result.eval["test_bpd"] > 0
    samples = load_run(tmp_path).sample(4)
    assert samples.shape == (4, 8, 8, 1) and samples.dtype == np.uint8


def test_guidance_without_a_guided_model_is_refused(tmp_path):
    config = tiny("experiments/configs/ddpm_toy2d.py")
    config.sampler.guidance_scale = 3.0
    with pytest.raises(ConfigError, match="guidance"):
        loop.train_and_evaluate(config, tmp_path, build_task)
    assert not tmp_path.joinpath("config.json").exists()


def test_unknown_sampler_and_schedule_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown sampler"):
        loop.train_and_evaluate(tiny("experiments/configs/ddpm_toy2d.py",
                                     **{"sampler.name": "plms"}), tmp_path, build_task)
    with pytest.raises(ConfigError, match=r"model\.schedule"):
        loop.train_and_evaluate(tiny("experiments/configs/ddpm_toy2d.py",
                                     **{"model.schedule": "quadratic"}), tmp_path, build_task)
