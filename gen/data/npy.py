"""The user's own arrays, from ``.npy`` files written with ``np.save``.

- uint8 arrays of shape (N, H, W, C), or (N, H, W) which gain C = 1, are images in [0, 255].
- float arrays of shape (N, D) are vectors, cast to float32; they must be finite.

``data.path`` is the training array and ``data.test_path`` an optional test array with the same
event shape and kind. Without a test file, a share ``data.test_fraction`` (default 0.1, at least
one example) is held out by a fixed permutation (``np.random.default_rng(0)``); both parts keep the
file's order. Files are loaded with ``allow_pickle=False`` and memory-mapped, so uint8 image
arrays with a test file are not read into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gen.data.source import ArraySource, Dataset, DataSpec
from gen.errors import ConfigError, DataError

DEFAULT_TEST_FRACTION = 0.1
_ACCEPTED = "uint8 images (N, H, W, C) or (N, H, W), or float vectors (N, D)"


def _read(path: Path, key: str) -> tuple[np.ndarray, DataSpec]:
    """Loads and checks one array: images as uint8 (N, H, W, C), vectors as float32 (N, D)."""
    if not path.is_file():
        raise DataError(f"data.{key} {path} does not exist; save your array there with np.save.")
    with path.open("rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise DataError(
            f"data.{key} {path} is an .npz archive; save one array per file with np.save."
        )
    if magic != b"\x93NUMPY":
        raise DataError(
            f"data.{key} {path} is not a .npy file (no NUMPY header); write it with "
            f"np.save(path, array) holding {_ACCEPTED}."
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Python objects" in reason or "pickle" in reason:
            reason = "it holds Python objects, which are not loaded (allow_pickle=False)"
        raise DataError(
            f"data.{key} {path} cannot be read as a .npy array ({reason}); "
            f"write it with np.save(path, array) holding {_ACCEPTED}."
        ) from e
    if array.dtype == np.uint8 and array.ndim in (3, 4):
        if array.ndim == 3:
            array = array[..., None]
        return array, DataSpec(shape=tuple(array.shape[1:]), kind="image")
    if np.issubdtype(array.dtype, np.floating) and array.ndim == 2:
        if not np.isfinite(array).all():
            raise DataError(
                f"data.{key} {path} holds NaN or infinite values; clean or drop those rows."
            )
        return np.asarray(array, np.float32), DataSpec(shape=(array.shape[1],), kind="vector")
    raise DataError(
        f"data.{key} {path} holds an array of dtype {array.dtype} and shape {array.shape}; "
        f"expected {_ACCEPTED}."
    )


# The config keys of this source and their defaults (gen.data.loaders.source_keys).
KEYS = {"path": "", "test_path": "", "test_fraction": DEFAULT_TEST_FRACTION}


def load(data_config) -> Dataset:
    """The arrays in ``data.path`` (and ``data.test_path``) as train and test splits.

    Config keys: ``path`` (required), ``test_path`` (optional), ``test_fraction`` (default 0.1,
    used only without ``test_path``).
    """
    if not data_config.get("path"):
        raise ConfigError(
            f"data.path is required for source 'npy': set it to a .npy file holding {_ACCEPTED}."
        )
    train, spec = _read(Path(data_config.get("path")).expanduser(), "path")
    if len(train) < 2:
        raise DataError(
            f"data.path {data_config.get('path')} holds {len(train)} example(s); at least 2 are "
            "needed to train and evaluate."
        )
    test_path = data_config.get("test_path")
    if test_path:
        test, test_spec = _read(Path(test_path).expanduser(), "test_path")
        if test_spec != spec:
            raise DataError(
                f"data.test_path {test_path} holds {test_spec.kind}s of shape {test_spec.shape} "
                f"but data.path holds {spec.kind}s of shape {spec.shape}; they must match."
            )
        if len(test) < 1:
            raise DataError(f"data.test_path {test_path} holds no examples.")
        return Dataset(spec, ArraySource(train), ArraySource(test))
    fraction = data_config.get("test_fraction", DEFAULT_TEST_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0 < fraction < 1:
        raise ConfigError(f"data.test_fraction must be a number in (0, 1), got {fraction!r}.")
    n = len(train)
    num_test = min(max(1, round(fraction * n)), n - 1)
    perm = np.random.default_rng(0).permutation(n)
    test_idx, train_idx = np.sort(perm[:num_test]), np.sort(perm[num_test:])
    return Dataset(spec, ArraySource(train[train_idx]), ArraySource(train[test_idx]))
