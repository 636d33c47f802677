"""Random-access data sources and the description of what they hold.

Every loader in ``gen.data`` returns a :class:`Source` per split: an object with ``len()`` and
``source[indices] -> {"x": (n, *shape), "y": (n,) int32 (optional)}`` for a 1-D integer index
array. That is all the input pipeline needs to shuffle deterministically and resume at any step,
and it is what ``grain`` and ``tfds.data_source`` expose too.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

import numpy as np

Kind = Literal["vector", "image"]


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What one example of a dataset looks like.

    Attributes:
      shape: the event shape of ``x``: ``(D,)`` for vectors, ``(H, W, C)`` for images.
      kind: ``"vector"`` (float data) or ``"image"`` (uint8 pixels in [0, 255]).
      num_classes: number of labels in ``y``, or ``None`` when the data is unlabelled.
    """

    shape: tuple[int, ...]
    kind: Kind
    num_classes: int | None = None

    @property
    def dim(self) -> int:
        """The number of scalars in one event, D."""
        return int(np.prod(self.shape))


class Source(Protocol):
    """A random-access split: ``len(source)`` and ``source[indices] -> dict of arrays``."""

    def __len__(self) -> int: ...

    def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


class ArraySource:
    """An in-memory split: ``x`` of shape ``(N, *shape)`` and optional int labels ``y`` (N,)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None):
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
        self.x = x
        self.y = None if y is None else np.asarray(y, np.int32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        out = {"x": self.x[indices]}
        if self.y is not None:
            out["y"] = self.y[indices]
        return out


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset as its :class:`DataSpec` and its train and test splits."""

    spec: DataSpec
    train: Source
    test: Source
