"""Datasets and input pipelines: sources, deterministic batching, preprocessing.

Example::

    >>> import ml_collections
    >>> from gen import data
    >>> ds = data.load(ml_collections.ConfigDict({"source": "toy2d", "name": "moons"}))
    >>> batch = data.Pipeline(ds.train, global_batch_size=256, seed=0).batch(step=0)
"""

from gen.data.loaders import SOURCES, load
from gen.data.pipeline import Pipeline, eval_batches, to_global
from gen.data.preprocess import Preprocess, make_preprocess
from gen.data.source import ArraySource, Dataset, DataSpec, Source

__all__ = [
    "SOURCES",
    "ArraySource",
    "DataSpec",
    "Dataset",
    "Pipeline",
    "Preprocess",
    "Source",
    "eval_batches",
    "load",
    "make_preprocess",
    "to_global",
]
