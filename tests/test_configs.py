"""Every experiment config: its docstring states its target, and it trains end to end when tiny."""

import ast
import importlib
import json
import re
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from gen.config import load_config_file
from gen.models import FAMILIES, build_task
from gen.train import load_run, loop

ROOT = Path(__file__).parents[1]
CONFIGS = sorted(p for p in (ROOT / "experiments" / "configs").glob("*.py")
                 if not p.stem.startswith("_"))  # _flows.py, _data.py, ...: shared bases
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
    # CNFs (ffjord): one Heun step (model.num_steps), a lax.scan, instead of compiling reverse
    # mode through diffrax's adaptive loop (tens of seconds on a 2-core CPU; the slow run of
    # test_continuous has it).
    ("model", "solver"): "heun",
    ("model", "num_scales"): 2,  # ffjord_mnist: 3 CNF blocks at 2 scales instead of 5 at 3
    ("model", "hidden2"): (8, 8), ("model", "channels"): (8, 8), ("model", "eval_samples"): 4,
    ("model", "eval_chunk"): 2, ("model", "num_codes"): 16, ("model", "code_dim"): 4,
    ("model", "prior_features"): 8, ("model", "prior_layers"): 1, ("model", "prior_start"): 1,
    ("model", "ch_mult"): (1,), ("model", "n_dis"): 2, ("model", "ngf"): 8, ("model", "ndf"): 8,
}


# Images for the configs whose data is not here (TFDS): small, so the tiny runs stay quick.
IMAGES = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)


def shrink(config) -> None:
    """Sets every size key of ``TINY`` that ``config`` has, in place, and draws 2-D densities
    on a coarse grid (an ODE model's density picture is 40,000 likelihoods at full size)."""
    config.density_grid = 12
    if "eval" in config:  # image metrics first train a feature classifier (tens of seconds)
        config.eval.metrics = tuple(m for m in config.eval.get("metrics", ())
                                    if m in ("mode_coverage", "mmd"))
    for (section, key), value in TINY.items():
        node = config if section is None else config.get(section)
        if node is not None and key in node:
            node[key] = type(node[key])(value) if isinstance(node[key], tuple) else value


def test_there_are_configs():
    assert {"quickstart", "nsf_toy2d", "ddpm_toy2d", "fm_toy2d"} <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_docstring_states_command_hardware_runtime_result_and_source(path):
    """Each reproduction note has its four labelled parts (STYLE.md, DESIGN.md)."""
    load_config_file(path)  # imports, and returns a ConfigDict
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.name} has no docstring"
    parts = {}
    for label in ("Command", "Hardware and runtime", "Expected result", "Source"):
        match = re.search(rf"^{label}\b[^:\n]*:(.*?)(?=^[A-Z][\w ]*:|\Z)", doc, re.M | re.S)
        assert match and match.group(1).strip(), f"{path.name}: no '{label}:' part"
        parts[label] = match.group(1)
    assert f"python -m experiments.run --config experiments/configs/{path.name}" in (
        parts["Command"]), path.name
    runtime = parts["Hardware and runtime"]
    assert re.search(r"\b(CPU|GPU|TPU|H200|H100|A100)\b", runtime), f"{path.name}: no hardware"
    assert re.search(r"\d[\d,.]*\s*(s|ms|seconds?|minutes?|hours?|days?)\b", runtime), (
        f"{path.name}: no runtime")
    assert re.search(r"\d", parts["Expected result"]), f"{path.name}: no number to reach"


# Configs whose tiny run repeats another config's: the same task builder (gen.models), so the
# same train step, evaluation and sampling code, with another network of the family, at other
# sizes or on other data. They run end to end in the slow run only. The default run still loads
# every config, switches it to every data source and builds its model (the tests below), and the
# networks are checked by the family tests (test_bijectors, test_models, test_gan_runs, ...).
SAME_AS_ANOTHER = {
    "ddpm_digits": "ddpm_digits_cfg", "ddpm_mnist": "ddpm_digits_cfg",
    "ddpm_cifar10": "ddpm_digits_cfg", "ddpm_toy2d": "ddpm_digits_cfg",
    "realnvp_mnist": "glow_digits", "realnvp_digits": "glow_digits", "glow_mnist": "glow_digits",
    "realnvp_toy2d": "quickstart", "maf_toy2d": "quickstart", "nsf_toy2d": "quickstart",
    "vqvae_cifar10": "vqvae_digits",
    "dcgan_mnist": "dcgan_digits", "sngan_cifar10": "dcgan_digits",
    "wgangp_cifar10": "dcgan_digits",
    "vae_toy2d": "vae_digits", "vae_mnist": "vae_digits",
}


def _builder(config: ml_collections.ConfigDict):
    """The function that builds a config's task (as gen.models.build_task picks it)."""
    module = importlib.import_module(FAMILIES[config.model.name])
    return getattr(module, f"build_{config.model.name}_task", None) or module.build_task


def _e2e_params():
    return [pytest.param(p, marks=pytest.mark.slow) if p.stem in SAME_AS_ANOTHER else p
            for p in CONFIGS]


def test_configs_run_only_in_the_slow_run_have_a_twin_with_their_task_run_by_default():
    stems = {p.stem for p in CONFIGS}
    assert set(SAME_AS_ANOTHER) <= stems and set(SAME_AS_ANOTHER.values()) <= stems
    assert not set(SAME_AS_ANOTHER) & set(SAME_AS_ANOTHER.values())
    for slow, twin in SAME_AS_ANOTHER.items():
        a, b = load_config_file(CONFIGS[[p.stem for p in CONFIGS].index(slow)]), load_config_file(
            CONFIGS[[p.stem for p in CONFIGS].index(twin)])
        assert _builder(a) is _builder(b), (slow, twin)


@pytest.mark.parametrize("path", _e2e_params(), ids=lambda p: p.stem)
def test_config_trains_evaluates_and_samples_at_tiny_size(path, tmp_path):
    """Each config, tiny, end to end: train, evaluate, pictures, then ``load_run`` and sample.

    Toy configs train on a user's npy array, deleted before the run is opened again (a run needs
    no data to sample); TFDS configs on npy images (TFDS data is not prepared here); MNIST
    configs on the shared MNIST split when it is there. Class-conditional runs sample the
    labels asked for.
    """
    config = load_config_file(path)
    shrink(config)
    if "schedule_kwargs" in config.model and "num_steps" in config.model.schedule_kwargs:
        config.model.schedule_kwargs.num_steps = 10
    data_file = None
    if config.data.source in ("toy2d", "tfds"):
        rng = np.random.default_rng(0)
        data = (rng.normal(size=(300, 2)).astype(np.float32) * [1.0, 0.3] + [2.0, -1.0]
                if config.data.source == "toy2d" else IMAGES)
        data_file = tmp_path / "mine.npy"
        np.save(data_file, data)
        config.data.source = "npy"  # no known modes: what the config docstrings tell users
        if "eval" in config:
            config.eval.metrics = tuple(m for m in config.eval.metrics if m != "mode_coverage")
        with config.data.unlocked():
            config.data.path = str(data_file)
    if config.data.source == "idx":
        if not MNIST.is_dir():
            pytest.skip("../shared/data/mnist is absent")
        config.data.path = str(MNIST)
        config.data.train_split, config.data.test_split = "test[:64]", "test[64:96]"
    workdir = tmp_path / "run"
    result = loop.train_and_evaluate(config, workdir, build_task)
    assert result.status == "done" and result.step == 2
    metric = next(v for k, v in result.eval.items() if k.startswith("test_"))
    assert np.isfinite(metric)
    if "test_bpd" in result.eval:  # bits per 8-bit dimension of an untrained model: above 0
        assert result.eval["test_bpd"] > 0
    assert json.loads((workdir / "eval.json").read_text())["step"] == 2
    assert list((workdir / "samples").glob("*.png"))

    if data_file is not None:
        data_file.unlink()
    run = load_run(workdir)
    shape = run.spec.shape
    if run.class_conditional:
        from gen.errors import ConfigError

        samples = run.sample(6, labels=[3, 7])
        assert run.spec.num_classes == 10
        with pytest.raises(ConfigError, match=r"class indices in 0\.\.9"):
            run.sample(2, labels=[10])
    else:  # the size of the run's own pictures: their compiled sampler is reused from the cache
        samples = run.sample(int(config.get("num_samples", 4)))
    assert samples.shape == (len(samples), *shape) and len(samples) >= 4
    assert samples.dtype == (np.uint8 if run.spec.kind == "image" else np.float32)
    assert np.all(np.isfinite(samples))


def _user_inputs(folder: Path) -> dict[str, dict[str, str]]:
    """A command-line value for every key of every data source, with the files they name."""
    from test_data_sources import _write_split

    idx = folder / "idx"
    idx.mkdir()
    _write_split(idx, "train", 60, 0, gz=False)
    _write_split(idx, "t10k", 20, 1, gz=False)
    rng = np.random.default_rng(0)
    np.save(folder / "vectors.npy", rng.normal(size=(50, 2)).astype(np.float32))
    np.save(folder / "images.npy", rng.integers(0, 256, (50, 8, 8), dtype=np.uint8))
    common = {"shuffle": "true", "scale": "symmetric", "dequantize": "none", "binarize": "none"}
    return {
        "toy2d": {"name": "moons", "num_train": "300", "num_test": "50", "seed": "1",
                  "shuffle": "false"},
        "digits": {**common, "test_fraction": "0.25"},
        "idx": {**common, "path": str(idx), "train_split": "train[:50]", "test_split": "test"},
        "npy": {**common, "path": str(folder / "images.npy"), "test_path": "",
                "test_fraction": "0.2"},
        "tfds": {**common, "name": "mnist", "data_dir": str(folder / "tfds"), "download": "false",
                 "train_split": "train[:90%]", "test_split": "test", "image_key": "image",
                 "label_key": "label", "use_tf_load": "false"},
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_switches_to_every_data_source(path, tmp_path):
    from gen.config import get_config
    from gen.data.loaders import SOURCES, load, source_keys
    from gen.errors import DataError

    inputs = _user_inputs(tmp_path)
    assert set(inputs) == set(SOURCES)
    for source, values in inputs.items():
        assert set(values) | {"source"} >= set(source_keys(source)) - {"scale", "dequantize",
                                                                       "binarize"}
        config = get_config(path, [("data.source", source),
                                   *((f"data.{k}", v) for k, v in values.items())])
        assert config.data.source == source
        for key, text in values.items():
            assert str(config.data[key]).lower() == text.lower(), key
        if source == "tfds":  # offline and unprepared: the one-line error that says what to do
            with pytest.raises(DataError, match="not prepared"):
                load(config.data)
        else:
            assert len(load(config.data).train) > 0


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_builds_its_model_on_a_users_npy_file(path, tmp_path):
    """``--config.data.source=npy --config.data.path=...`` for any config, as the README says."""
    from gen.config import get_config
    from gen.data.loaders import load
    from gen.data.preprocess import make_preprocess
    from gen.errors import ConfigError
    from gen.train.mesh import make_mesh
    from gen.train.run_files import example_batch

    native = load_config_file(path).data.source
    data = IMAGES if native != "toy2d" else np.random.default_rng(0).normal(
        size=(40, 2)).astype(np.float32)
    np.save(tmp_path / "mine.npy", data)
    config = get_config(path, [("data.source", "npy"), ("data.path", str(tmp_path / "mine.npy"))])
    dataset = load(config.data)
    if config.model.get("class_conditional"):  # an npy file holds no labels
        with pytest.raises(ConfigError, match="needs labelled data"):
            build_task(config, dataset.spec)
        return
    task = build_task(config, dataset.spec)
    batch = example_batch(dataset.spec, {"x": data.dtype.name}, 8)
    state = loop.init_state(config, task, make_preprocess(dataset.spec, config.data), batch,
                            make_mesh(), abstract=True)
    assert jax.tree.leaves(state.params)
