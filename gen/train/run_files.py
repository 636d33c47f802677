"""What a workdir records so that a finished run opens without its training data.

``data_spec.json`` holds the dataset's :class:`~gen.data.source.DataSpec` and the dtype of every
batch entry. With it and ``config.json``, the task, its preprocessing and the shapes of its
state are rebuilt from files alone (``gen.train.load_run``), even after the data is gone.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from gen.data.source import DataSpec
from gen.train.writers import write_json

SPEC_FILE = "data_spec.json"


def save_spec(workdir: str | Path, spec: DataSpec, batch: dict[str, np.ndarray]) -> None:
    """Writes ``spec`` and the dtypes of ``batch``'s entries to ``workdir/data_spec.json``."""
    write_json(Path(workdir) / SPEC_FILE, {
        "shape": list(spec.shape),
        "kind": spec.kind,
        "num_classes": spec.num_classes,
        "dtypes": {k: np.dtype(v.dtype).name for k, v in batch.items()},
    })


def load_spec(workdir: str | Path) -> tuple[DataSpec, dict[str, str]] | None:
    """The spec and batch dtypes saved in ``workdir``, or ``None`` for runs without the file."""
    path = Path(workdir) / SPEC_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    spec = DataSpec(shape=tuple(saved["shape"]), kind=saved["kind"],
                    num_classes=saved["num_classes"])
    return spec, dict(saved["dtypes"])


def example_batch(spec: DataSpec, dtypes: dict[str, str], size: int) -> dict[str, jax.Array]:
    """Shapes and dtypes of a batch of ``size`` examples: enough to trace a task's ``init``."""
    shapes = {"x": (size, *spec.shape)}
    return {k: jax.ShapeDtypeStruct(shapes.get(k, (size,)), np.dtype(d))
            for k, d in dtypes.items()}
