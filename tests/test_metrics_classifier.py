"""Tests for the digits/MNIST feature classifier: deterministic training, the cache, accuracy."""

import dataclasses
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from gen.data import digits
from gen.errors import DataError
from gen.metrics import classifier
from gen.metrics.classifier import TrainSettings, fit_classifier, load_classifier

TINY = TrainSettings(steps=100, batch_size=32, learning_rate=1e-2, width=4, features=8)
MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def _digits():
    x, y = digits._raw()
    train, test = digits.split_indices()
    return (x[train], y[train]), (x[test], y[test])


def test_training_is_deterministic(cache):
    train, test = _digits()
    a = fit_classifier("digits", train, test, TINY, cache=False)
    b = fit_classifier("digits", train, test, TINY, cache=False)
    leaves_a, leaves_b = (classifier.jax.tree_util.tree_leaves(c.params) for c in (a, b))
    assert len(leaves_a) == 8
    for u, v in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert a.test_accuracy == b.test_accuracy
    assert not list(cache.iterdir())  # cache=False writes nothing


def test_cache_is_used_and_keyed_by_settings_and_data(cache, monkeypatch):
    config = ml_collections.ConfigDict({"source": "digits"})
    first = load_classifier(config, TINY)
    files = list(cache.glob("classifier-digits-*.npz"))
    assert len(files) == 1 and first.key.startswith(files[0].name.split("-")[2][:16])

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(classifier, "train", no_training)
    again = load_classifier(config, TINY)
    assert again.test_accuracy == first.test_accuracy
    x = digits._raw()[0][:5]
    np.testing.assert_array_equal(again.features(x), first.features(x))
    with pytest.raises(AssertionError, match="trained again"):
        load_classifier(config, dataclasses.replace(TINY, steps=99))
    with pytest.raises(AssertionError, match="trained again"):
        load_classifier(ml_collections.ConfigDict({"source": "digits", "test_fraction": 0.3}), TINY)


def test_accuracy_features_and_logits(cache):
    train, (x_test, y_test) = _digits()
    clf = fit_classifier("digits", train, (x_test, y_test), TINY)
    logits = clf.logits(x_test, batch_size=100)  # 360 rows: the last batch is padded
    assert logits.shape == (360, 10)
    assert clf.test_accuracy == pytest.approx((logits.argmax(axis=1) == y_test).mean())
    assert clf.test_accuracy > 0.5  # 100 tiny steps beat chance (0.1) by far
    feats = clf.features(x_test)
    assert feats.shape == (360, 8) and feats.dtype == np.float32 and (feats >= 0).all()
    np.testing.assert_allclose(clf.features(x_test[:7], batch_size=3), feats[:7], rtol=1e-6)


def test_errors_are_clear(cache):
    train, test = _digits()
    clf = fit_classifier("digits", train, test, TINY)
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, 8, 8, 1\), got float32"):
        clf.features(np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match="uint8 \\(N, H, W, C\\)"):
        fit_classifier("x", (train[0][..., 0], train[1]), test, TINY)
    with pytest.raises(DataError, match="for image datasets, got 'vector'"):
        load_classifier(ml_collections.ConfigDict({"source": "toy2d", "name": "moons"}), TINY)


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no MNIST test split at {MNIST_DIR}")
def test_default_classifier_on_mnist(cache):
    config = ml_collections.ConfigDict({"source": "idx", "path": str(MNIST_DIR),
                                        "train_split": "test[:8000]", "test_split": "test[8000:]"})
    assert load_classifier(config).test_accuracy > 0.97
