"""experiments.evaluate and periodic sample metrics, wired to gen.metrics, end to end."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from experiments import evaluate
from gen import metrics
from gen.config import get_config
from gen.data.loaders import load
from gen.models import build_task
from gen.train import load_run, loop
from gen.train.writers import read_metrics

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("evaluate")

QUICKSTART = "experiments/configs/quickstart.py"
TINY = [("num_steps", "6"), ("batch_size", "64"), ("log_every", "3"), ("checkpoint_every", "3"),
        ("eval_every", "6"), ("num_samples", "50"), ("data.num_train", "1000"),
        ("data.num_test", "300"), ("model.num_layers", "2"), ("model.hidden", "(8,8)")]


def tiny(*overrides: tuple[str, str], data: tuple[tuple[str, str], ...] = (
        ("data.name", "8gaussians"),)):
    """The quickstart's RealNVP at a tiny size, on 8gaussians unless ``data`` says otherwise."""
    sizes = [(k, v) for k, v in TINY if not (k.startswith("data.") and data[0][1] == "digits")]
    config = get_config(QUICKSTART, [*data, *sizes, *overrides])
    config.density_grid = 8
    return config


def snapshot(workdir: Path) -> dict[str, str]:
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(workdir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("vector_run")
    loop.train_and_evaluate(tiny(), workdir, build_task)
    return workdir


def test_evaluate_merges_every_metric_into_eval_json(vector_run, capsys):
    before = json.loads((vector_run / "eval.json").read_text())
    code = evaluate.main(["--workdir", str(vector_run), "--num", "200", "--seed", "3", "--metrics",
                          "fid,kid,precision_recall,density_coverage,mmd,mode_coverage"])
    assert code == 0, capsys.readouterr().err
    after = json.loads((vector_run / "eval.json").read_text())
    assert after["test_nll"] == before["test_nll"] and after["step"] == before["step"]
    assert after["sample_metrics"] == {**after["sample_metrics"], "step": 6, "num_samples": 200,
                                       "seed": 3, "ref": "test", "ref_size": 300,
                                       "features": ["vectors"]}
    # the same numbers, computed here from the run's samples and the test split
    run = load_run(vector_run)
    fake = run.sample(200, key=3).astype(np.float64)
    real = load(run.config.data).test[np.arange(300)]["x"].astype(np.float64)
    fid = metrics.frechet_distance(*metrics.feature_statistics(real),
                                   *metrics.feature_statistics(fake))
    kid_mean, kid_std = metrics.kid(real, fake, 100, 200)
    centers, std = (np.asarray(c) for c in
                    __import__("gen.data.toy2d", fromlist=["x"]).mixture_modes("8gaussians"))
    modes = metrics.mode_coverage(fake, centers, float(std))
    expected = {"fid": fid, "kid": kid_mean, "kid_std": kid_std,
                "precision": metrics.precision_recall(real, fake, 3)[0],
                "coverage": metrics.density_coverage(real, fake, 5)[1],
                "mmd": metrics.mmd(real, fake), "modes_captured": modes.modes,
                "high_quality": modes.high_quality}
    for key, value in expected.items():
        assert after[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert "fid" in capsys.readouterr().out


def test_digits_get_classifier_metrics_and_an_inception_score(tmp_path):
    # the quickstart's RealNVP on flattened digits: the quickest model of 8x8 images
    loop.train_and_evaluate(tiny(data=(("data.source", "digits"),)), tmp_path, build_task)
    results = evaluate.evaluate(tmp_path, num=40, metrics="fid,is", progress=False)
    assert "classifier" in results["sample_metrics"]["features"]
    assert np.isfinite(results["fid_classifier"]) and results["fid_classifier"] > 0
    assert 1.0 <= results["is_classifier"] <= 10.0  # exp of a KL over 10 classes
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["fid_classifier"] == results["fid_classifier"] and "test_bpd" in saved


@pytest.mark.parametrize("args,match", [
    (["--metrics", "fid,sharpness"], "unknown metric 'sharpness'"),
    (["--num", "3", "--metrics", "precision_recall"], "--num 3 is too few"),
    (["--metrics", "is"], "is needs class logits"),
    (["--metrics", "mode_coverage", "--ref-num", "1"], "--ref-num must be at least 2"),
])
def test_bad_input_is_one_line_and_changes_nothing(vector_run, capsys, args, match):
    before = snapshot(vector_run)
    assert evaluate.main(["--workdir", str(vector_run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err, err
    assert snapshot(vector_run) == before


def test_a_workdir_without_checkpoints_is_refused(tmp_path, capsys):
    assert evaluate.main(["--workdir", str(tmp_path)]) == 2
    assert "holds no trained run" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_nan_samples_are_refused_without_touching_the_workdir(vector_run, capsys, monkeypatch):
    from gen.train import run as run_lib

    real_load = run_lib.load_run

    def broken(*args, **kwargs):
        run = real_load(*args, **kwargs)
        run._sample = lambda params, key, n, y: np.full((n, 2), np.nan, np.float32)
        return run

    monkeypatch.setattr(run_lib, "load_run", broken)
    before = snapshot(vector_run)
    assert evaluate.main(["--workdir", str(vector_run), "--num", "50"]) == 2
    assert "hold NaN or infinite values" in capsys.readouterr().err
    assert snapshot(vector_run) == before


def test_periodic_sample_metrics_are_logged_and_saved(tmp_path):
    config = tiny(("num_steps", "6"), ("eval_every", "3"))
    config.eval = {"metrics": ("fid", "mode_coverage"), "num_samples": 100}
    result = loop.train_and_evaluate(config, tmp_path, build_task)
    rows = [r for r in read_metrics(tmp_path) if "fid" in r]
    assert [r["step"] for r in rows] == [3, 6]
    assert all(np.isfinite(r["fid"]) and 0 <= r["high_quality"] <= 1 for r in rows)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["fid"] == result.eval["fid"] == rows[-1]["fid"]


def test_bad_periodic_metrics_are_refused_before_the_workdir_is_touched(tmp_path):
    from gen.errors import ConfigError

    config = tiny()
    config.eval = {"metrics": ("fid", "is"), "num_samples": 100}
    with pytest.raises(ConfigError, match="is needs class logits"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    config.eval = {"metrics": ("kid",), "num_samples": 1}
    with pytest.raises(ConfigError, match=r"eval\.num_samples=1 is too few"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    assert not (tmp_path / "w").exists()


def test_floor_scores_the_reference_halves_against_each_other(vector_run):
    results = evaluate.evaluate(vector_run, metrics="fid,kid", floor=True, progress=False)
    real = load(load_run(vector_run).config.data).test[np.arange(300)]["x"].astype(np.float64)
    a, b = real[:150], real[150:]
    expected = metrics.frechet_distance(*metrics.feature_statistics(a),
                                        *metrics.feature_statistics(b))
    assert results["floor_fid"] == pytest.approx(expected, rel=1e-9)
    assert results["sample_metrics_floor"]["halves"] == 150
    saved = json.loads((vector_run / "eval.json").read_text())
    assert saved["floor_kid"] == results["floor_kid"] and "test_nll" in saved
