"""Any TensorFlow Datasets name, read without TensorFlow through ``tfds.data_source``.

The dataset must be prepared in the ``array_record`` format, which supports random access; TFDS
prepares it that way here when ``data.download`` is true (the default) and the machine has network
access. Offline, prepare it elsewhere with ``tfds build NAME --file_format=array_record`` and copy
the folder into ``data.data_dir``.

Examples are dicts; ``data.image_key`` (default ``"image"``) is stacked into ``x`` and
``data.label_key`` (default ``"label"``) into ``y`` when the dataset has that feature as a
``ClassLabel`` (whose ``num_classes`` goes into the spec); otherwise there are no labels. uint8
features of rank 3 (H, W, C), or rank 2 (H, W, which gain C = 1), are images; float features of
rank 1 are vectors (cast to float32). Splits ``data.train_split`` / ``data.test_split`` (defaults
``"train"`` / ``"test"``) go to TFDS unchanged, so its slice syntax works: ``"train[:90%]"``.

``data.use_tf_load=True`` reads the whole splits into memory with ``tfds.load(...,
batch_size=-1)`` instead, for datasets prepared only as TFRecord; it needs TensorFlow (the ``tf``
extra). ``tensorflow_datasets`` is imported inside the functions: importing it takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gen.data.source import ArraySource, Dataset, DataSpec
from gen.errors import ConfigError, DataError


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _spec_for(name: str, key: str, shape: Any, dtype: Any) -> DataSpec:
    """The spec of feature ``key``, from its (per-example) shape and numpy dtype."""
    if not isinstance(shape, tuple) or any(d is None or d < 0 for d in shape):
        raise DataError(
            f"TFDS dataset {name!r} feature {key!r} has variable or nested shape {shape}; this "
            "loader needs fixed-size arrays (resize the images when preparing the dataset)."
        )
    dtype = np.dtype(dtype)
    if dtype == np.uint8 and len(shape) in (2, 3):
        return DataSpec(shape=tuple(shape) + (1,) * (3 - len(shape)), kind="image")
    if np.issubdtype(dtype, np.floating) and len(shape) == 1:
        return DataSpec(shape=tuple(shape), kind="vector")
    raise DataError(
        f"TFDS dataset {name!r} feature {key!r} is {dtype} of shape {shape}; expected uint8 images "
        "(H, W, C) or (H, W), or float vectors (D,). Set data.image_key to another feature."
    )


def _to_x(values: np.ndarray, spec: DataSpec) -> np.ndarray:
    dtype = np.uint8 if spec.kind == "image" else np.float32
    return np.asarray(values, dtype).reshape((len(values), *spec.shape))


class TfdsSource:
    """A :class:`~gen.data.source.Source` over a TFDS random-access data source.

    ``source[indices]`` fetches those records (with the data source's ``__getitems__`` when it has
    one) and stacks ``image_key`` into ``x`` and, if ``label_key`` is given, ``label_key`` into
    ``y`` (int32).
    """

    def __init__(
        self, data_source: Sequence, spec: DataSpec, image_key: str, label_key: str | None
    ):
        self.data_source = data_source
        self.spec = spec
        self.image_key = image_key
        self.label_key = label_key

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        n = len(self)
        idx = np.asarray(indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices out of range for a split of {n} examples.")
        keys = [int(i) for i in np.where(idx < 0, idx + n, idx)]
        getitems = getattr(self.data_source, "__getitems__", None)
        records = getitems(keys) if getitems is not None else [self.data_source[k] for k in keys]
        if not records:
            out = {"x": np.zeros((0, *self.spec.shape), _to_x(np.zeros(0), self.spec).dtype)}
        else:
            try:
                out = {"x": _to_x(np.stack([r[self.image_key] for r in records]), self.spec)}
            except ValueError as e:
                raise DataError(
                    f"Records of feature {self.image_key!r} do not stack into {self.spec.shape} "
                    f"arrays ({_first_line(e)}); this loader needs fixed-size examples."
                ) from e
        if self.label_key is not None:
            out["y"] = np.asarray([r[self.label_key] for r in records], np.int32).reshape(-1)
        return out


def _not_prepared(name: str, where: str, why: str, download: bool) -> DataError:
    return DataError(
        f"TFDS dataset {name!r} is not prepared in {where} and {why}. Prepare it on a machine with "
        f"network access with `tfds build {name} --file_format=array_record` and copy it into "
        "data.data_dir" + (", or set data.download=True." if not download else ".")
    )


def _label_key(name: str, features: Any, label_key: str | None) -> tuple[str | None, int | None]:
    if not label_key or label_key not in features:
        return None, None
    num_classes = getattr(features[label_key], "num_classes", None)
    return (label_key, int(num_classes)) if num_classes else (None, None)


# The config keys of this source and their defaults (gen.data.loaders.source_keys); an empty
# data_dir means TFDS's own.
KEYS = {"name": "", "data_dir": "", "download": True, "train_split": "train",
        "test_split": "test", "image_key": "image", "label_key": "label", "use_tf_load": False}


def _config(data_config) -> dict[str, Any]:
    name = data_config.get("name")
    if not name or not isinstance(name, str):
        raise ConfigError(
            "data.name is required for source 'tfds': set it to a TFDS dataset name, e.g. 'mnist'."
        )
    return {
        "name": name,
        "data_dir": data_config.get("data_dir") or None,
        "download": bool(data_config.get("download", KEYS["download"])),
        "splits": (data_config.get("train_split", KEYS["train_split"]),
                   data_config.get("test_split", KEYS["test_split"])),
        "image_key": data_config.get("image_key", KEYS["image_key"]),
        "label_key": data_config.get("label_key", KEYS["label_key"]),
    }


def _builder(tfds: Any, name: str, data_dir: str | None) -> Any:
    try:
        return tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(
            f"TFDS has no dataset named {name!r}; see https://www.tensorflow.org/datasets/catalog "
            "for the names (config and version go as 'name/config:version')."
        ) from e


def load(data_config) -> Dataset:
    """The TFDS dataset ``data.name`` as random-access train and test sources.

    Config keys: ``name`` (required), ``data_dir`` (default: TFDS's, ``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``), ``download`` (default True), ``train_split`` / ``test_split``
    (defaults "train" / "test"), ``image_key`` (default "image"), ``label_key`` (default "label"),
    ``use_tf_load`` (default False).
    """
    cfg = _config(data_config)
    if data_config.get("use_tf_load", KEYS["use_tf_load"]):
        return _load_with_tf(cfg)
    import tensorflow_datasets as tfds

    name, (train_split, test_split) = cfg["name"], cfg["splits"]
    builder = _builder(tfds, name, cfg["data_dir"])
    where = str(builder.data_dir)
    if not builder.is_prepared() and not cfg["download"]:
        raise _not_prepared(name, where, "data.download is False", download=False)
    try:
        train, test = tfds.data_source(
            name,
            split=[train_split, test_split],
            data_dir=cfg["data_dir"],
            download=cfg["download"],
            builder_kwargs={"file_format": "array_record"},
        )
    except NotImplementedError as e:  # prepared, but in a format without random access
        raise DataError(
            f"TFDS dataset {name!r} in {where} is not in the array_record format ({_first_line(e)}"
            f"). Rebuild it with `tfds build {name} --file_format=array_record`, or install "
            'TensorFlow (pip install -e ".[tf]") and set data.use_tf_load=True.'
        ) from e
    except (KeyError, ValueError, AssertionError) as e:
        if builder.is_prepared():  # most likely a bad split name or slice
            raise DataError(
                f"TFDS dataset {name!r} cannot give splits {train_split!r} / {test_split!r} "
                f"({_first_line(e)}); its splits are {sorted(builder.info.splits)}."
            ) from e
        raise _not_prepared(
            name, where, f"could not be downloaded ({_first_line(e)})", cfg["download"]
        ) from e
    except Exception as e:  # network and download errors come in many types
        if builder.is_prepared():
            raise
        raise _not_prepared(
            name, where, f"could not be downloaded ({_first_line(e)})", cfg["download"]
        ) from e
    features = getattr(train, "dataset_info", builder.info).features
    image_key = cfg["image_key"]
    if image_key not in features:
        raise DataError(
            f"TFDS dataset {name!r} has no feature {image_key!r}; its features are "
            f"{sorted(features.keys())}. Set data.image_key to one of them."
        )
    feature = features[image_key]
    spec = _spec_for(name, image_key, getattr(feature, "shape", None), feature.np_dtype)
    label_key, num_classes = _label_key(name, features, cfg["label_key"])
    spec = DataSpec(shape=spec.shape, kind=spec.kind, num_classes=num_classes)
    return Dataset(
        spec,
        TfdsSource(train, spec, image_key, label_key),
        TfdsSource(test, spec, image_key, label_key),
    )


def _load_with_tf(cfg: dict[str, Any]) -> Dataset:
    """``tfds.load(..., batch_size=-1)`` into in-memory arrays; needs TensorFlow."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise DataError(
            "data.use_tf_load=True needs TensorFlow, which is not installed; run "
            '`pip install -e ".[tf]"`, or prepare the dataset as array_record and drop use_tf_load.'
        ) from e
    import tensorflow_datasets as tfds

    name = cfg["name"]
    try:
        splits, info = tfds.load(
            name,
            split=list(cfg["splits"]),
            data_dir=cfg["data_dir"],
            download=cfg["download"],
            batch_size=-1,
            with_info=True,
        )
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(f"TFDS has no dataset named {name!r}.") from e
    except (AssertionError, OSError) as e:
        where = cfg["data_dir"] or "the default TFDS data_dir"
        raise _not_prepared(
            name, where, f"could not be loaded ({_first_line(e)})", cfg["download"]
        ) from e
    image_key = cfg["image_key"]
    if image_key not in info.features:
        raise DataError(
            f"TFDS dataset {name!r} has no feature {image_key!r}; its features are "
            f"{sorted(info.features.keys())}. Set data.image_key to one of them."
        )
    label_key, num_classes = _label_key(name, info.features, cfg["label_key"])
    arrays = [tfds.as_numpy(split) for split in splits]
    first = arrays[0][image_key]
    spec = _spec_for(name, image_key, tuple(first.shape[1:]), first.dtype)
    spec = DataSpec(shape=spec.shape, kind=spec.kind, num_classes=num_classes)
    sources = [
        ArraySource(_to_x(a[image_key], spec), None if label_key is None else a[label_key])
        for a in arrays
    ]
    return Dataset(spec, *sources)
