"""``load(data_config)``: the dataset that ``data.source`` names, as a :class:`Dataset`.

Sources: ``toy2d`` (synthetic 2-D densities), ``digits`` (scikit-learn's 8x8 digits), ``idx``
(MNIST-format files in a folder), ``npy`` (your own arrays), ``tfds`` (TensorFlow Datasets over
array_record). Each loader module is imported only when used, so importing this one is cheap.
"""

from __future__ import annotations

import importlib

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


def load(data_config) -> Dataset:
    """Loads the train and test splits described by the ``data`` config (read, never modified)."""
    source = data_config.get("source")
    if not isinstance(source, str) or source not in _MODULES:
        raise ConfigError(f"Unknown data.source {source!r}; expected one of: {', '.join(SOURCES)}.")
    return importlib.import_module(_MODULES[source]).load(data_config)
