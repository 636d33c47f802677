"""Tiny end-to-end GAN runs through the loop, one per architecture, shared by module fixtures:
eval.json with mode coverage, a class-conditional run sampled per class from the command line,
and the ResNet with spectral norm and DiffAugment."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from experiments import sample as sample_cli
from gen.models import build_task
from gen.train import load_run, loop

# One worker runs this module, so its module-scoped trained runs are built once under xdist.
pytestmark = pytest.mark.xdist_group("gan_runs")


def config_for(name: str, data: dict, **model) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 2
    config.batch_size = 16
    config.log_every = 1
    config.checkpoint_every = 2
    config.eval_every = 2
    config.num_samples = 8
    config.ema_decay = 0.9
    config.ema_start = 1
    config.data = ml_collections.ConfigDict(data)
    config.model = ml_collections.ConfigDict({
        "name": name, "loss": "non_saturating", "penalty": "none", "penalty_weight": 0.0,
        "n_dis": 2, "latent_dim": 4, **model})
    config.optim = ml_collections.ConfigDict({"name": "adam", "learning_rate": 2e-4, "b1": 0.5})
    config.optim.discriminator = ml_collections.ConfigDict({"b1": 0.0, "b2": 0.9})
    return config


DIGITS = {"source": "digits", "scale": "symmetric", "dequantize": "none"}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy")
    config = config_for("mlp_gan", {"source": "toy2d", "name": "25gaussians", "num_train": 256,
                                    "num_test": 64},
                        packing=4, g_hidden=(16, 16), d_hidden=(16,), d_activation="maxout",
                        penalty="r1", penalty_weight=0.1)
    config.eval = ml_collections.ConfigDict({"metrics": ("mode_coverage",), "num_samples": 250})
    result = loop.train_and_evaluate(config, workdir, build_task)
    return workdir, result


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conditional")
    config = config_for("dcgan", DIGITS, ch=8, class_conditional=True, n_dis=1)
    loop.train_and_evaluate(config, workdir, build_task)
    return workdir


def test_toy_run_reports_mode_coverage_and_its_cheap_scores(toy_run):
    workdir, result = toy_run
    saved = json.loads((workdir / "eval.json").read_text())
    assert saved["step"] == 2 and saved == result.eval
    assert 0 <= saved["modes_captured"] <= 25 and 0 <= saved["high_quality"] <= 1
    for key in ("test_d_real", "test_d_fake", "test_nearest_sample_distance"):
        assert np.isfinite(saved[key])
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_generator", "loss_discriminator", "penalty"} <= set(rows[0])
    assert list((workdir / "samples").glob("*.png"))


def test_a_finished_run_opens_and_samples_with_the_generator_average(toy_run):
    workdir, _ = toy_run
    run = load_run(workdir)
    x = run.sample(10, key=1)
    assert x.shape == (10, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert run.params["generator"] is run.state.ema_params
    np.testing.assert_array_equal(x, run.sample(10, key=1))


def test_sample_cli_gives_one_row_per_class(conditional_run, tmp_path, capsys):
    out = tmp_path / "rows.npy"
    code = sample_cli.main(["--workdir", str(conditional_run), "--num", "20", "--labels",
                            "0,1,2,3,4,5,6,7,8,9", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    images = np.load(out)
    assert images.shape == (20, 8, 8, 1) and images.dtype == np.uint8
    assert out.with_suffix(".png").exists()
    # the label reaches the generator: the same latents with another class give other images
    run = load_run(conditional_run)
    a = run.sample(4, key=0, labels=[3])
    b = run.sample(4, key=0, labels=[7])
    assert not np.array_equal(a, b)


def test_conditional_run_refuses_unlabelled_data_and_packing(tmp_path):
    from gen.errors import ConfigError

    config = config_for("dcgan", DIGITS, ch=8, class_conditional=True, packing=2)
    with pytest.raises(ConfigError, match="packing > 1 is not supported"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    np.save(tmp_path / "images.npy", np.zeros((32, 8, 8), np.uint8))
    config = config_for("dcgan", {**DIGITS, "source": "npy", "path": str(tmp_path / "images.npy")},
                        ch=8, class_conditional=True)
    with pytest.raises(ConfigError, match="needs labelled data"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    assert not (tmp_path / "w").exists()


@pytest.mark.slow  # ~30 s on a loaded 2-core CPU; test_configs trains the ResNet configs tiny
def test_resnet_with_spectral_norm_and_diffaugment_trains(tmp_path):
    """(bf16 compute: the benchmark's GPU item, run tiny in test_gan_benchmark.py.)"""
    config = config_for("resnet_gan", DIGITS, ngf=8, ndf=8, spectral_norm=True, loss="hinge",
                        diffaugment="color,translation,cutout")
    config.ema_decay = 0.0
    result = loop.train_and_evaluate(config, tmp_path, build_task)
    assert np.isfinite(result.eval["test_d_real"])
    run = load_run(tmp_path)
    assert run.state.model_state["discriminator"]["spectral"]
    images = run.sample(3)
    assert images.shape == (3, 8, 8, 1) and images.dtype == np.uint8
    assert all(np.isfinite(p).all() for p in jax.tree.leaves(run.state.params))
