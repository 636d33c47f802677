"""The diffusion family's tasks refuse bad settings before the workdir is touched.

Each diffusion config trains, evaluates and samples end to end at a tiny size in
tests/test_configs.py (toy configs on a user's npy array, the class-conditional one with labels).
"""


import pytest

from gen.config import get_config
from gen.errors import ConfigError
from gen.models import build_task
from gen.train import loop


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
