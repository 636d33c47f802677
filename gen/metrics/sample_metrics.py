"""Sample-quality metrics of a model's samples against a reference split, chosen by name.

These are the names that ``python -m experiments.evaluate --metrics`` and ``config.eval.metrics``
take, and the ``eval.json`` keys they write:

=====================  ==============================================  ======================
name                   what                                            keys
=====================  ==============================================  ======================
``fid``                Fréchet distance of the feature statistics      ``fid``
``kid``                unbiased cubic-kernel MMD^2, 100 subsets        ``kid``, ``kid_std``
``precision_recall``   Kynkaanniemi et al. 2019, k = 3                 ``precision``, ``recall``
``density_coverage``   Naeem et al. 2020, k = 5                        ``density``, ``coverage``
``is``                 Inception Score of a classifier's logits        ``is``, ``is_std``
``mmd``                RBF MMD^2 of raw vectors (low-dimensional)      ``mmd``
``mode_coverage``      VEEGAN/PacGAN scoring of a known mixture        ``modes_captured``,
                                                                       ``high_quality``
=====================  ==============================================  ======================

The features are those of ``gen.metrics.features.feature_sets``: raw vectors for vector data,
the FID Inception for images, and for digits and MNIST-format data also their own classifier,
whose keys carry the suffix ``_classifier`` (``fid_classifier``, ``is_classifier``, ...). There,
the Inception set is used when its weights are installed and left out otherwise (``features``
says which sets ran). The reference is the whole test split (or train split, or its first
``ref_limit`` examples); its Inception features are cached on disk, keyed by the reference
pixels themselves (``gen.metrics.cache``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from gen.data.source import Dataset
from gen.errors import ConfigError, DataError
from gen.metrics.cache import cache_dir, load_npz, save_npz
from gen.metrics.features import FeatureSet, feature_sets
from gen.metrics.frechet import feature_statistics, frechet_distance
from gen.metrics.inception_score import inception_score
from gen.metrics.kid import kid
from gen.metrics.manifold import density_coverage, precision_recall
from gen.metrics.mmd import mmd
from gen.metrics.modes import mode_coverage

METRICS = ("fid", "kid", "precision_recall", "density_coverage", "is", "mmd", "mode_coverage")
K_PRECISION, K_DENSITY, KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS = 3, 5, 100, 1000, 10
INCEPTION_CACHE_VERSION = 1


def parse_metrics(names: str | Sequence[str]) -> tuple[str, ...]:
    """Metric names from ``"fid,kid"`` or a sequence; ``ConfigError`` for unknown ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    items = [str(n).strip() for n in items if str(n).strip()]
    unknown = [n for n in items if n not in METRICS]
    if unknown or not items:
        what = f"unknown metric {unknown[0]!r}" if unknown else "no metrics named"
        raise ConfigError(f"{what}; choose from {', '.join(METRICS)}.")
    return tuple(dict.fromkeys(items))


def minimum_samples(names: Sequence[str]) -> int:
    """The fewest samples every metric in ``names`` is defined for."""
    need = {"fid": 2, "kid": 2, "precision_recall": K_PRECISION + 1,
            "density_coverage": K_DENSITY + 1, "is": IS_SPLITS, "mmd": 2, "mode_coverage": 1}
    return max(need[n] for n in names)


def _inception_available() -> bool:
    from gen.metrics.inception import inception_params

    try:
        inception_params()
    except (DataError, OSError, ValueError, ImportError):
        return False
    return True


@dataclasses.dataclass
class SampleMetrics:
    """Computes the named metrics of samples against a fixed reference (module docstring).

    Build it once with :meth:`build`; call it on samples in data units (uint8 images of the
    dataset's shape, or float vectors) for a dict of ``eval.json`` keys.
    """

    names: tuple[str, ...]
    sets: list[FeatureSet]
    reference: dict[str, np.ndarray]
    ref_size: int
    modes: tuple[np.ndarray, float] | None
    classifier: Any = None

    @classmethod
    def build(cls, data_config: Any, dataset: Dataset, names: Sequence[str], ref: str = "test",
              ref_limit: int | None = None) -> SampleMetrics:
        """Checks that ``names`` apply to this data, and computes the reference features."""
        names = parse_metrics(names)
        spec = dataset.spec
        if ref not in ("test", "train"):
            raise ConfigError(f"the reference split must be test or train, got {ref!r}.")
        vectors = spec.kind == "vector"
        if "mmd" in names and not vectors:
            raise ConfigError("mmd is for low-dimensional vector data; use fid or kid on images.")
        modes = None
        if "mode_coverage" in names:
            from gen.data.toy2d import mixture_modes

            if data_config.get("source") == "toy2d":
                modes = mixture_modes(data_config.get("name"))
            if modes is None:
                raise ConfigError(
                    "mode_coverage needs a toy2d mixture with known modes (e.g. data.name="
                    "8gaussians or 25gaussians); on other data leave it out of eval.metrics "
                    "(e.g. --config.eval.metrics='()').")
        own_classifier = data_config.get("source") in ("digits", "idx") and bool(spec.num_classes)
        if "is" in names and not own_classifier:
            raise ConfigError(
                "is needs class logits: the digits and MNIST-format (idx) data have a classifier "
                "of their own; the FID Inception has no class head.")
        sets: list[FeatureSet] = []
        if [n for n in names if n not in ("mmd", "mode_coverage", "is")]:
            inception = not vectors and (not own_classifier or _inception_available())
            sets = feature_sets(data_config, dataset=dataset, inception=inception)
        classifier = None
        if "is" in names:
            from gen.metrics.classifier import load_classifier

            classifier = load_classifier(data_config, dataset=dataset)
        source = dataset.test if ref == "test" else dataset.train
        n = len(source) if ref_limit is None else min(int(ref_limit), len(source))
        if n < 2:
            raise DataError(f"the {ref} split holds {n} example(s); metrics need at least 2.")
        x = source[np.arange(n)]["x"]
        reference = {"raw": np.asarray(x)}
        for s in sets:
            if s.name == "inception":
                reference[s.name] = _cached_inception(np.asarray(x), s)
            elif s.name != "vectors":
                reference[s.name] = s.fn(x)
        return cls(names, sets, reference, n, modes, classifier)

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.sets]

    def __call__(self, samples: np.ndarray) -> dict[str, float]:
        samples = np.asarray(samples)
        raw = self.reference["raw"]
        if samples.shape[1:] != raw.shape[1:]:
            raise ValueError(f"samples of shape {samples.shape[1:]} do not match the data's "
                             f"{raw.shape[1:]}.")
        if len(samples) < minimum_samples(self.names):
            raise ValueError(f"{', '.join(self.names)} need at least "
                             f"{minimum_samples(self.names)} samples, got {len(samples)}.")
        out: dict[str, float] = {}
        for s in self.sets:
            real = raw.reshape(len(raw), -1) if s.name == "vectors" else self.reference[s.name]
            fake = s.fn(samples)
            real = np.asarray(real, np.float64)
            out.update(_feature_metrics(self.names, real, fake, s.suffix))
        if "is" in self.names:
            mean, std = inception_score(self.classifier.logits(samples), splits=IS_SPLITS)
            out.update({"is_classifier": mean, "is_classifier_std": std})
        if "mmd" in self.names:
            out["mmd"] = mmd(raw.reshape(len(raw), -1), samples.reshape(len(samples), -1))
        if "mode_coverage" in self.names:
            centers, std = self.modes
            result = mode_coverage(samples, centers, std)
            out.update({"modes_captured": float(result.modes),
                        "high_quality": result.high_quality})
        return {k: float(v) for k, v in out.items()}


def _feature_metrics(names: Sequence[str], real: np.ndarray, fake: np.ndarray,
                     suffix: str) -> dict[str, float]:
    out = {}
    if "fid" in names:
        out["fid"] = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    if "kid" in names:
        size = min(KID_SUBSET_SIZE, len(real), len(fake))
        out["kid"], out["kid_std"] = kid(real, fake, KID_SUBSETS, size)
    if "precision_recall" in names:
        out["precision"], out["recall"] = precision_recall(real, fake, K_PRECISION)
    if "density_coverage" in names:
        out["density"], out["coverage"] = density_coverage(real, fake, K_DENSITY)
    return {f"{k}{suffix}": float(v) for k, v in out.items()}


def _cached_inception(images: np.ndarray, feature_set: FeatureSet) -> np.ndarray:
    digest = hashlib.sha1(images.tobytes())
    digest.update(f"{images.shape}{images.dtype}v{INCEPTION_CACHE_VERSION}".encode())
    path = cache_dir() / f"reference-inception-{digest.hexdigest()[:20]}.npz"
    cached = load_npz(path)
    if cached is not None and cached["features"].shape[0] == len(images):
        return cached["features"]
    features = feature_set.fn(images)
    save_npz(path, {"features": features})
    return features
