"""The diffusion family's tasks refuse bad settings before the workdir is touched.

Each diffusion config trains, evaluates and samples end to end at a tiny size in
tests/test_configs.py (toy configs on a user's npy array, the class-conditional one with labels).
"""


import jax
import numpy as np
import pytest

from gen.config import get_config
from gen.data.source import DataSpec
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


def _learned_range_task(abstract: bool = False, **overrides):
    config = tiny("experiments/configs/ddpm_toy2d.py", **{
        "model.variance": "learned_range", "model.num_train_steps": 20,
        "model.schedule_kwargs.num_steps": 20, **overrides})
    task = build_task(config, DataSpec((2,), "vector"))
    batch = {"x": jax.random.normal(jax.random.key(1), (8, 2))}
    key = jax.random.key(0)
    state = jax.eval_shape(task.init, key, batch) if abstract else jax.jit(task.init)(key, batch)
    return task, state, batch


def test_learned_range_variance_is_wired_into_the_task():
    """Improved DDPM on 2-D data: the network outputs 2C; the train step (hybrid loss), ddpm
    sampling with the learned variance, DDIM with the mean part, and the likelihood trace
    (abstract evaluation: no compile)."""
    task, state, batch = _learned_range_task(True, **{"sampler.name": "ddpm"})
    assert state.params["out"]["kernel"].shape == (32, 4)  # 2C outputs
    _, metrics = jax.eval_shape(task.step, state, batch, jax.random.key(2))
    assert metrics["loss"].shape == ()
    out = jax.eval_shape(lambda p, k: task.sample(p, k, 5), state.params, jax.random.key(3))
    assert out.shape == (5, 2)
    task, state, batch = _learned_range_task(True, **{"sampler.name": "ddim"})
    out = jax.eval_shape(lambda p, k: task.sample(p, k, 5), state.params, jax.random.key(3))
    assert out.shape == (5, 2)


@pytest.mark.slow
def test_learned_range_variance_trains_and_samples():
    task, state, batch = _learned_range_task(**{"sampler.name": "ddpm"})
    state, metrics = jax.jit(task.step)(state, batch, jax.random.key(2))
    assert np.isfinite(metrics["loss"])
    x = task.sample(state.params, jax.random.key(3), 5)
    assert x.shape == (5, 2) and np.all(np.isfinite(x))


@pytest.mark.slow
def test_learned_range_variance_other_samplers_and_likelihood():
    """DDIM and the probability-flow likelihood use the mean part only."""
    task, state, batch = _learned_range_task()
    x = task.sample(state.params, jax.random.key(3), 5)
    assert x.shape == (5, 2) and np.all(np.isfinite(x))
    assert np.all(np.isfinite(task.evaluate(state.params, batch, jax.random.key(4))["nll"]))


def test_bad_variance_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="fixed, learned_range"):
        loop.train_and_evaluate(tiny("experiments/configs/ddpm_toy2d.py",
                                     **{"model.variance": "learned"}), tmp_path, build_task)
    with pytest.raises(ConfigError, match="discrete time"):
        loop.train_and_evaluate(tiny("experiments/configs/ddpm_toy2d.py", **{
            "model.variance": "learned_range", "model.num_train_steps": 0}), tmp_path, build_task)
    with pytest.raises(ConfigError, match="vlb_weight"):
        loop.train_and_evaluate(tiny("experiments/configs/ddpm_toy2d.py", **{
            "model.variance": "learned_range", "model.vlb_weight": -1.0}), tmp_path, build_task)
    assert not tmp_path.joinpath("config.json").exists()
