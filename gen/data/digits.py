"""scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), which ship with the package.

Pixels are the 0..16 counts of the original data, mapped to uint8 by ``round(v * 255 / 16)``
(0 -> 0, 8 -> 128, 16 -> 255; only v = 8 lands on a half, 127.5, and rounds up). Images are
(8, 8, 1) uint8; labels 0..9 as int32. The train/test split is fixed and stratified:
``train_test_split(arange(1797), test_size=test_fraction, stratify=y, random_state=0)``.
"""

from __future__ import annotations

import functools

import numpy as np

from gen.data.source import ArraySource, Dataset, DataSpec
from gen.errors import ConfigError

NUM_CLASSES = 10
DEFAULT_TEST_FRACTION = 0.2


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Maps 0..16 pixel counts to uint8 with ``round(v * 255 / 16)``, halves rounding up."""
    return np.floor(np.asarray(values, np.float64) * 255.0 / 16.0 + 0.5).astype(np.uint8)


@functools.cache
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = to_uint8(bunch.images)[..., None]
    y = bunch.target.astype(np.int32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def split_indices(test_fraction: float = DEFAULT_TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """The fixed, stratified (train, test) indices into the 1,797 examples."""
    from sklearn.model_selection import train_test_split

    _, y = _raw()
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=0
    )
    return train, test


# The config keys of this source and their defaults (gen.data.loaders.source_keys).
KEYS = {"test_fraction": DEFAULT_TEST_FRACTION}


def load(data_config) -> Dataset:
    """The digits as (8, 8, 1) uint8 images with labels.

    Config keys: ``test_fraction`` (default 0.2), the share of examples held out for testing.
    """
    fraction = data_config.get("test_fraction", DEFAULT_TEST_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0 < fraction < 1:
        raise ConfigError(f"data.test_fraction must be a number in (0, 1), got {fraction!r}.")
    x, y = _raw()
    try:
        train, test = split_indices(float(fraction))
    except ValueError as e:  # too few examples per side for a stratified split of 10 classes
        raise ConfigError(
            f"data.test_fraction={fraction} cannot split the 1797 digits into stratified train "
            f"and test sets ({str(e).splitlines()[0]}); use a value between 0.01 and 0.99."
        ) from e
    spec = DataSpec(shape=(8, 8, 1), kind="image", num_classes=NUM_CLASSES)
    return Dataset(spec, ArraySource(x[train], y[train]), ArraySource(x[test], y[test]))
