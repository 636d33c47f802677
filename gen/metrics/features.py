"""Which features a dataset's samples are compared in, and all the feature metrics in one call.

``feature_sets(data_config)`` picks, by the dataset's kind and source:

======================  ==============  ==================================================
data                    feature set     metric names (``compare(..., suffix)``)
======================  ==============  ==================================================
vectors (toy2d, npy)    ``vectors``     ``fid``, ``kid``, ``precision``, ... on raw vectors
images                  ``inception``   ``fid``, ``kid``, ``precision``, ... (FID Inception)
digits, idx (MNIST)     ``classifier``  ``fid_classifier``, ``kid_classifier``, ... in addition
======================  ==============  ==================================================

Each set is a ``FeatureSet(name, suffix, fn)`` with ``fn(samples) -> (N, D)`` features: raw
vectors as float64, images (uint8, the dataset's shape) through ``inception_features`` or the
dataset's classifier (``gen.metrics.classifier``, trained and cached on first use).

Example::

    >>> import ml_collections
    >>> config = ml_collections.ConfigDict({"source": "toy2d", "name": "8gaussians"})
    >>> [s.name for s in feature_sets(config)]
    ['vectors']
    >>> rng = np.random.default_rng(0)
    >>> m = compare(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)))
    >>> sorted(m)
    ['coverage', 'density', 'fid', 'kid', 'kid_std', 'precision', 'recall']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gen.metrics.checks import as_features
from gen.metrics.classifier import DEFAULT_SETTINGS, TrainSettings, load_classifier
from gen.metrics.frechet import feature_statistics, frechet_distance
from gen.metrics.inception import inception_features
from gen.metrics.kid import DEFAULT_SEED, kid
from gen.metrics.manifold import prdc

# Sources whose labelled images also get a classifier of their own.
CLASSIFIER_SOURCES = ("digits", "idx")


class FeatureSet(NamedTuple):
    """name: ``vectors``, ``inception`` or ``classifier``; suffix: appended to metric names;
    fn: samples -> ``(N, D)`` features."""

    name: str
    suffix: str
    fn: Callable[[Any], np.ndarray]


def vector_features(samples: Any) -> np.ndarray:
    """Samples as float64 ``(N, D)`` rows, each example flattened; NaN or inf refused."""
    x = np.asarray(samples)
    return as_features(x.reshape(len(x), -1), "samples")


def feature_sets(
    data_config: Any,
    *,
    dataset: Any = None,
    inception: bool = True,
    classifier: bool | None = None,
    settings: TrainSettings = DEFAULT_SETTINGS,
) -> list[FeatureSet]:
    """The feature sets for the dataset that ``data_config`` describes (module docstring).

    ``classifier=None`` adds the classifier set for labelled images from ``digits`` or ``idx``;
    ``True`` forces it for any labelled image dataset, ``False`` leaves it out. ``inception=False``
    leaves the Inception set out. ``dataset`` avoids loading the data again.
    """
    if dataset is None:
        from gen.data import load

        dataset = load(data_config)
    spec = dataset.spec
    if spec.kind == "vector":
        return [FeatureSet("vectors", "", vector_features)]
    sets = [FeatureSet("inception", "", inception_features)] if inception else []
    if classifier is None:
        classifier = data_config.get("source") in CLASSIFIER_SOURCES and bool(spec.num_classes)
    if classifier:
        clf = load_classifier(data_config, settings, dataset=dataset)
        sets.append(FeatureSet("classifier", "_classifier", clf.features))
    return sets


def compare(
    real: Any,
    fake: Any,
    suffix: str = "",
    *,
    k_precision: int = 3,
    k_density: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """FID, KID (mean and std), precision/recall and density/coverage of two feature sets.

    ``kid_subset_size`` is capped at the smaller set's size. Names carry ``suffix``:
    ``fid{suffix}``, ``kid{suffix}``, ``kid_std{suffix}``, ``precision{suffix}``, ...
    """
    r, f = as_features(real, "real", None), as_features(fake, "fake", None)
    fid = frechet_distance(*feature_statistics(r), *feature_statistics(f))
    size = min(kid_subset_size, len(r), len(f))
    kid_mean, kid_std = kid(r, f, kid_subsets, size, seed)
    pr = prdc(r, f, k_precision)
    dc = pr if k_density == k_precision else prdc(r, f, k_density)
    out = {
        "fid": fid, "kid": kid_mean, "kid_std": kid_std,
        "precision": pr["precision"], "recall": pr["recall"],
        "density": dc["density"], "coverage": dc["coverage"],
    }
    return {f"{name}{suffix}": value for name, value in out.items()}
