"""The VAE family end to end through the loop, load_run and the command line, at tiny sizes.

Each run is shared by the tests that read it (module-scoped fixtures). The configs' own tiny
runs are in test_configs.py; these cover the other paths: two stochastic layers with DReG and
labels, the free-bits ELBO, the VQ-VAE's codebook loss with a conditional prior, and bad input.
"""

import json
import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import run as run_cli
from experiments import sample as sample_cli
from gen.config import get_config
from gen.errors import ConfigError
from gen.models import build_task
from gen.train import Task, TrainState, load_run, loop, make_optimizer

# One worker runs this module, so its module-scoped trained runs are built once under xdist.
pytestmark = pytest.mark.xdist_group("vae_tasks")

CONFIGS = "experiments/configs"
# the MNIST configs on the 8x8 digits, with batches that 8 test devices divide
ON_DIGITS = ["--config.data.source=digits", "--config.batch_size=64",
             "--config.eval_batch_size=64"]


def _tiny(config, **overrides):
    config.num_steps = 4
    config.batch_size = 32
    config.eval_batch_size = 32
    config.log_every = 2
    config.checkpoint_every = 4
    config.eval_every = 4
    config.num_samples = 8
    config.num_eval_examples = 40
    for key, value in overrides.items():
        node = config
        *parts, leaf = key.split(".")
        for part in parts:
            node = node[part]
        with node.unlocked():
            node[leaf] = value
    return config


@pytest.fixture(scope="module")
def two_layer_cvae(tmp_path_factory):
    """A class-conditional two-layer IWAE (k = 3, DReG) on statically binarized digits."""
    workdir = tmp_path_factory.mktemp("cvae")
    config = _tiny(get_config(f"{CONFIGS}/iwae_mnist.py", [("data.source", "digits")]), **{
        "data.binarize": "static", "model.class_conditional": True, "model.k": 3,
        "model.gradient": "dreg", "model.latent_dim": 6, "model.latent_dim2": 4,
        "model.hidden": (16,), "model.hidden2": (8,), "model.eval_samples": 64,
        "model.eval_chunk": 32})
    result = loop.train_and_evaluate(config, workdir, build_task)
    return workdir, result


def test_two_layer_dreg_cvae_reports_nats_and_active_units(two_layer_cvae):
    workdir, result = two_layer_cvae
    ev = result.eval
    assert set(ev) == {"step", "test_nll", "test_nelbo", "test_active_units"}
    assert 0 < ev["test_nll"] <= ev["test_nelbo"] + 0.5  # IS tightens the ELBO
    assert ev["test_nll"] < 64 * 2.0  # about a fair coin per pixel after 4 steps
    assert 0 <= ev["test_active_units"] <= 10
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["iwae_bound"]) for r in rows if "iwae_bound" in r)


def test_conditional_samples_one_row_per_class_from_the_command_line(two_layer_cvae, tmp_path,
                                                                     capsys):
    workdir, _ = two_layer_cvae
    run = load_run(workdir)
    assert run.class_conditional and run.task.log_prob is None
    out = tmp_path / "s.npy"
    assert sample_cli.main(["--workdir", str(workdir), "--num", "20", "--labels", "3,7",
                            "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (20, 8, 8, 1) and samples.dtype == np.uint8
    assert out.with_suffix(".png").is_file()
    with pytest.raises(ConfigError, match=r"class indices in 0\.\.9"):
        run.sample(2, labels=[10])


def test_free_bits_elbo_with_warmup_on_vectors(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(300, 4)).astype(np.float32) @ rng.normal(
        size=(4, 4)).astype(np.float32))
    config = _tiny(get_config(f"{CONFIGS}/vae_toy2d.py", [
        ("data.source", "npy"), ("data.path", str(tmp_path / "v.npy"))]), **{
        "model.latent_dim": 4, "model.hidden": (16,), "model.likelihood": "gaussian_fixed",
        "model.decoder_std": 0.5, "model.free_bits": 0.5, "model.free_bits_groups": 2,
        "model.kl_warmup_steps": 4, "model.beta": 2.0, "model.eval_samples": 8,
        "model.eval_chunk": 4})
    result = loop.train_and_evaluate(config, tmp_path / "run", build_task)
    assert np.isfinite(result.eval["test_nll"]) and result.eval["test_active_units"] <= 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    weights = [r["kl_weight"] for r in rows if "kl_weight" in r]
    assert weights == [0.5, 1.5]  # beta min(1, t / 4) at steps 2 and 4 (t = 1, 3 done)
    run = load_run(tmp_path / "run")
    assert run.sample(5).shape == (5, 4)
    assert np.all(np.isfinite(run.log_prob(rng.normal(size=(3, 4)).astype(np.float32))))


@pytest.fixture(scope="module")
def vqvae_loss_codebook(tmp_path_factory):
    """A VQ-VAE with the codebook loss on binarized digits, the prior conditional on labels."""
    workdir = tmp_path_factory.mktemp("vq")
    config = _tiny(get_config(f"{CONFIGS}/vqvae_digits.py"), **{
        "data.binarize": "dynamic", "model.likelihood": "bernoulli", "model.codebook": "loss",
        "model.class_conditional": True, "model.channels": (8,), "model.num_res_blocks": 1,
        "model.num_codes": 8, "model.code_dim": 4, "model.prior_features": 8,
        "model.prior_layers": 1, "model.prior_start": 2})
    return workdir, loop.train_and_evaluate(config, workdir, build_task)


def test_vqvae_reports_bounds_perplexity_and_usage(vqvae_loss_codebook):
    workdir, result = vqvae_loss_codebook
    ev = result.eval
    for key in ("test_nll", "test_nll_with_prior", "test_reconstruction_nll",
                "test_codebook_perplexity", "test_codebook_usage"):
        assert np.isfinite(ev[key]), key
    # the uniform-prior bound adds h w log K = 16 log 8 nats to the reconstruction term
    assert ev["test_nll"] == pytest.approx(ev["test_reconstruction_nll"] + 16 * math.log(8),
                                           rel=1e-6)
    assert 1 <= ev["test_codebook_perplexity"] <= 8 and 0 < ev["test_codebook_usage"] <= 1
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows if "stage" in r] == [0.0, 1.0]  # steps 2 and 4


def test_vqvae_samples_images_per_class_from_its_prior(vqvae_loss_codebook):
    workdir, _ = vqvae_loss_codebook
    run = load_run(workdir)
    assert "codebook" in run.state.params["vqvae"]  # the codebook loss: a learned codebook
    samples = run.sample(6, labels=[1, 2])
    assert samples.shape == (6, 8, 8, 1) and samples.dtype == np.uint8


def _error(argv, capsys, tmp_path) -> str:
    workdir = tmp_path / "never"
    assert run_cli.main([*argv, "--workdir", str(workdir)]) == 2
    assert not workdir.exists()
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ")
    return err


@pytest.mark.parametrize("config,overrides,message", [
    ("vae_toy2d", ["--config.data.source=digits"], "is the vector model's, but this dataset "
                                                   "holds images"),
    ("vae_digits", ["--config.data.source=npy", "--config.data.path=VECTORS"],
     "models images, but this dataset holds vectors"),
    ("vqvae_digits", ["--config.data.source=npy", "--config.data.path=VECTORS"],
     "'vqvae' needs images"),
    ("vae_mnist", [*ON_DIGITS, "--config.model.likelihood=dmol"],
     "'dmol' models 8-bit pixels"),
    ("vae_digits", ["--config.data.dequantize=uniform"], "'dmol' models 8-bit pixels"),
    ("vae_digits", ["--config.data.binarize=none", "--config.model.likelihood=bernoulli"],
     "needs binarized pixels"),
    ("vae_digits", ["--config.model.latent_dim=0"], "model.latent_dim must be a positive"),
    ("iwae_mnist", [*ON_DIGITS, "--config.model.k=0"],
     "model.k must be a positive integer"),
    ("vae_mnist", [*ON_DIGITS, "--config.model.gradient=dreg"],
     "use model.name='iwae'"),
    ("iwae_mnist", [*ON_DIGITS, "--config.model.beta=0.5"], "shape the ELBO"),
    ("vae_toy2d", ["--config.model.network=conv"], "'conv' needs images"),
    ("vae_toy2d", ["--config.model.eval_chunk=300"], "must divide model.eval_samples"),
    ("vae_toy2d", ["--config.model.free_bits_groups=3"], "must divide the 2 latent"),
    ("vae_digits", ["--config.model.class_conditional=True", "--config.data.source=npy",
                    "--config.data.path=IMAGES"], "needs labelled data"),
])
def test_bad_input_is_one_line_before_the_workdir_is_touched(config, overrides, message,
                                                             capsys, tmp_path):
    images, vectors = tmp_path / "images.npy", tmp_path / "vectors.npy"
    np.save(images, np.zeros((10, 8, 8), np.uint8))
    np.save(vectors, np.zeros((10, 3), np.float32))
    argv = ["--config", f"{CONFIGS}/{config}.py",
            *(o.replace("IMAGES", str(images)).replace("VECTORS", str(vectors))
              for o in overrides)]
    assert message in _error(argv, capsys, tmp_path)


def test_loop_averages_per_example_vectors_over_the_test_set_for_summarize(tmp_path):
    """Vector outputs of evaluate are test-set means (padding excluded), seen by summarize."""
    config = ml_collections.ConfigDict({
        "seed": 0, "num_steps": 1, "batch_size": 8, "eval_batch_size": 8, "log_every": 1,
        "checkpoint_every": 1, "eval_every": 1, "num_samples": 4,
        "data": {"source": "npy", "path": str(tmp_path / "v.npy"), "test_fraction": 0.5},
        "model": {"name": "custom"}, "optim": {"learning_rate": 1e-3}})
    data = np.arange(44, dtype=np.float32).reshape(22, 2)
    np.save(tmp_path / "v.npy", data)  # 11 test rows: one full batch of 8 and a padded one
    seen = {}

    def build(config, spec):
        tx = make_optimizer(config.optim, 1)

        def init(key, batch):
            return TrainState.create({"w": jnp.zeros(())}, tx, key)

        def step(state, batch, key):
            return state, {"loss": jnp.zeros(())}

        def evaluate(params, batch, key):
            return {"first": batch["x"][:, 0], "pair": batch["x"]}

        def summarize(means):
            seen.update(means)
            return {"pair_sum": float(np.sum(means["pair"]))}

        return Task(init, step, evaluate, lambda p, k, n, labels=None: jnp.zeros((n, 2)),
                    summarize=summarize)

    result = loop.train_and_evaluate(config, tmp_path / "run", build)
    from gen.data.loaders import load

    test = load(config.data).test.x
    assert len(test) == 11
    np.testing.assert_allclose(seen["pair"], test.mean(0))
    assert result.eval["test_first"] == pytest.approx(test[:, 0].mean())
    assert result.eval["test_pair_sum"] == pytest.approx(test.mean(0).sum())
    assert "test_pair" not in result.eval
