"""``load(data_config)``: the dataset that ``data.source`` names, as a :class:`Dataset`.

Sources: ``toy2d`` (synthetic 2-D densities), ``digits`` (scikit-learn's 8x8 digits), ``idx``
(MNIST-format files in a folder), ``npy`` (your own arrays), ``tfds`` (TensorFlow Datasets over
array_record). Each loader module is imported only when used, so importing this one is cheap.

Each source declares its config keys with their defaults (``source_keys``), so any config can
switch source from the command line: ``--config.data.source=npy --config.data.path=my.npy``
adds ``data.path`` even where the config file has no such key.
"""

from __future__ import annotations

import importlib
from typing import Any

from gen.data.source import Dataset
from gen.errors import ConfigError

_MODULES = {
    "toy2d": "gen.data.toy2d",
    "digits": "gen.data.digits",
    "idx": "gen.data.idx",
    "npy": "gen.data.npy",
    "tfds": "gen.data.tfds",
}
SOURCES: tuple[str, ...] = tuple(_MODULES)
# Keys of every source: the input pipeline's shuffling.
PIPELINE_KEYS: dict[str, Any] = {"source": "toy2d", "shuffle": True}


def load(data_config) -> Dataset:
    """Loads the train and test splits described by the ``data`` config (read, never modified)."""
    source = data_config.get("source")
    if not isinstance(source, str) or source not in _MODULES:
        raise ConfigError(f"Unknown data.source {source!r}; expected one of: {', '.join(SOURCES)}.")
    return importlib.import_module(_MODULES[source]).load(data_config)


def source_keys(source: str) -> dict[str, Any]:
    """The ``data.*`` keys that ``source`` reads, with their defaults (their types are the keys').

    That is the source's own keys, the pipeline's, and, for image sources, preprocessing's.
    """
    if source not in _MODULES:
        raise ConfigError(f"Unknown data.source {source!r}; expected one of: {', '.join(SOURCES)}.")
    from gen.data.preprocess import KEYS as preprocess_keys

    own = importlib.import_module(_MODULES[source]).KEYS
    images = source != "toy2d"  # npy, idx, tfds and digits can hold images
    return {**PIPELINE_KEYS, **(preprocess_keys if images else {}), **own}


def all_source_keys() -> dict[str, Any]:
    """The union of every source's keys and defaults."""
    keys: dict[str, Any] = {}
    for source in SOURCES:
        keys.update(source_keys(source))
    return keys
