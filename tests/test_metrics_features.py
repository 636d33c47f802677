"""Tests for gen.metrics.features: the feature sets each dataset gets, and compare()."""

import ml_collections
import numpy as np
import pytest

from gen import metrics
from gen.metrics.classifier import TrainSettings
from gen.metrics.features import compare, feature_sets, vector_features

TINY = TrainSettings(steps=5, batch_size=16, width=2, features=4)


def test_vector_data_uses_the_raw_vectors():
    sets = feature_sets(ml_collections.ConfigDict({"source": "toy2d", "name": "moons"}))
    assert [(s.name, s.suffix) for s in sets] == [("vectors", "")]
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    np.testing.assert_array_equal(vector_features(x), x.reshape(2, 6).astype(np.float64))
    with pytest.raises(ValueError, match="1 NaN"):
        vector_features(np.array([[0.0, np.nan]]))


def test_digits_get_inception_and_their_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path))
    config = ml_collections.ConfigDict({"source": "digits"})
    sets = feature_sets(config, settings=TINY)
    assert [(s.name, s.suffix) for s in sets] == [("inception", ""), ("classifier", "_classifier")]
    assert sets[0].fn is metrics.inception_features
    images = np.zeros((3, 8, 8, 1), np.uint8)
    assert sets[1].fn(images).shape == (3, 4)
    only = feature_sets(config, inception=False, settings=TINY)
    assert [s.name for s in only] == ["classifier"]
    assert [s.name for s in feature_sets(config, classifier=False)] == ["inception"]


def test_compare_gathers_every_metric_under_its_suffix():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 5)), rng.normal(0.5, 1.0, size=(40, 5))
    out = compare(real, fake, "_classifier", kid_subsets=5)
    assert sorted(out) == sorted(f"{m}_classifier" for m in (
        "fid", "kid", "kid_std", "precision", "recall", "density", "coverage"))
    fid = metrics.frechet_distance(*metrics.feature_statistics(real),
                                   *metrics.feature_statistics(fake))
    assert out["fid_classifier"] == pytest.approx(fid, rel=1e-12)
    assert out["kid_classifier"] == metrics.kid(real, fake, 5, 40)[0]  # subset capped at 40
    assert out["precision_classifier"] == metrics.precision_recall(real, fake, 3)[0]
    assert out["coverage_classifier"] == metrics.density_coverage(real, fake, 5)[1]
