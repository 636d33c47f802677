"""MNIST-format IDX files from a local folder: MNIST, Fashion-MNIST, KMNIST.

The folder ``data.path`` holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``);
the variant spelling ``train-images.idx3-ubyte`` is accepted too. Only the files of the splits
asked for are read, so a folder with the ``t10k-*`` files alone serves ``test`` splits.

Splits (``data.train_split``, default ``"train"``; ``data.test_split``, default ``"test"``) name the
``train-*`` files (``"train"``) or the ``t10k-*`` files (``"test"``), with an optional TFDS-style
slice of ints or percents: ``"test[:8000]"``, ``"test[8000:]"``, ``"train[10%:]"``,
``"train[-5000:]"``. Percent bounds round to the closest example, as in TFDS.

Images come out (N, H, W, 1) uint8 (28x28 for these datasets); labels int32, with
``num_classes = max label + 1`` over the label files read.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from gen.data.source import ArraySource, Dataset, DataSpec
from gen.errors import ConfigError, DataError

# IDX type codes -> big-endian numpy dtypes.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_PREFIX = {"train": "train", "test": "t10k"}
_SPLIT_RE = re.compile(r"^(train|test)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is a corrupt or truncated gzip file ({e}); download it again."
        ) from e


def read_idx(path: str | Path) -> np.ndarray:
    """Parses one IDX file (optionally gzipped) into an array in native byte order.

    Layout: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32, then the payload. Raises ``DataError`` on a bad magic number or a payload whose size
    does not match the dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _DTYPES:
        raise DataError(
            f"{path} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'}, expected "
            f"00 00, a type code in {{{', '.join(f'{c:02x}' for c in _DTYPES)}}}, and the rank."
        )
    dtype, ndim = _DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its IDX header is cut off; download it again.")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        state = "truncated" if len(data) - header < expected else "longer than its header says"
        raise DataError(
            f"{path} is {state}: dimensions {shape} need {expected} payload bytes but it has "
            f"{len(data) - header}; download it again."
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """``"test[8000:]"`` -> ``("test", "8000", None)``; raises ``ConfigError`` if malformed."""
    match = _SPLIT_RE.match(split.replace(" ", "")) if isinstance(split, str) else None
    if match is None:
        raise ConfigError(
            f"Bad IDX split {split!r}: expected 'train' or 'test', optionally sliced with ints or "
            "percents, e.g. 'test[:8000]', 'test[8000:]', 'train[10%:]'."
        )
    return match.group(1), match.group(2), match.group(3)


def _bound(spec: str | None, n: int, default: int) -> int:
    if spec is None:
        return default
    if spec.endswith("%"):
        pct = int(spec[:-1])
        if not -100 <= pct <= 100:
            raise ConfigError(f"Bad IDX split bound {spec!r}: a percent must be in [-100%, 100%].")
        return round(pct * n / 100)
    return int(spec)


def split_range(split: str, n: int) -> tuple[int, int]:
    """The ``[start, stop)`` examples out of ``n`` that a sliced split selects."""
    _, start, stop = parse_split(split)
    return slice(_bound(start, n, 0), _bound(stop, n, n)).indices(n)[:2]


def _find(folder: Path, base: str) -> Path | None:
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_split(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = _PREFIX[name]
    bases = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_find(folder, b) for b in bases]
    if None in paths:
        raise DataError(
            f"IDX split {name!r} needs {bases[0]} and {bases[1]} (optionally .gz) in {folder}; "
            f"missing: {', '.join(b for b, p in zip(bases, paths, strict=True) if p is None)}. "
            "Put the dataset's IDX files in that folder."
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{paths[0]} holds a {images.dtype} array of shape {images.shape}; expected uint8 "
            "images of shape (N, H, W)."
        )
    if labels.ndim != 1:
        raise DataError(f"{paths[1]} holds an array of shape {labels.shape}; expected (N,) labels.")
    if len(images) != len(labels):
        raise DataError(
            f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels; "
            "the two files must come from the same split."
        )
    return images[..., None], labels.astype(np.int32)


# The config keys of this source and their defaults (gen.data.loaders.source_keys).
KEYS = {"path": "", "train_split": "train", "test_split": "test"}


def load(data_config) -> Dataset:
    """The IDX dataset in the folder ``data.path`` with the splits asked for.

    Config keys: ``path`` (required folder), ``train_split`` (default "train"), ``test_split``
    (default "test"); see the module docstring for the slice syntax.
    """
    if not data_config.get("path"):
        raise ConfigError(
            "data.path is required for source 'idx': set it to the folder holding "
            "train-/t10k-images-idx3-ubyte and train-/t10k-labels-idx1-ubyte (optionally .gz)."
        )
    folder = Path(data_config.get("path")).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"IDX folder {folder} does not exist; set data.path to the folder holding "
            "train-/t10k-images-idx3-ubyte and train-/t10k-labels-idx1-ubyte (optionally .gz)."
        )
    splits = {
        "train": data_config.get("train_split", KEYS["train_split"]),
        "test": data_config.get("test_split", KEYS["test_split"]),
    }
    names = {role: parse_split(split)[0] for role, split in splits.items()}
    arrays = {name: _read_split(folder, name) for name in sorted(set(names.values()))}
    shapes = {arrays[name][0].shape[1:] for name in arrays}
    if len(shapes) > 1:
        raise DataError(f"The IDX files in {folder} hold images of different shapes {shapes}.")
    num_classes = max(int(y.max(initial=-1)) for _, y in arrays.values()) + 1
    if min(int(y.min(initial=0)) for _, y in arrays.values()) < 0:
        raise DataError(f"The IDX label files in {folder} hold negative labels.")
    sources = {}
    for role, split in splits.items():
        x, y = arrays[names[role]]
        start, stop = split_range(split, len(x))
        if stop <= start:
            raise DataError(
                f"data.{role}_split {split!r} selects no examples out of the {len(x)} in "
                f"{folder}; choose a non-empty slice."
            )
        sources[role] = ArraySource(x[start:stop], y[start:stop])
    spec = DataSpec(shape=shapes.pop(), kind="image", num_classes=max(num_classes, 1))
    return Dataset(spec, sources["train"], sources["test"])
