"""Deterministic, resumable batching over a random-access source, sharded over processes.

The global batch at step ``s`` is a pure function of ``(seed, global_batch_size, s)``:
the example stream is the concatenation of per-epoch permutations, epoch ``e`` being
``np.random.default_rng([seed, e]).permutation(N)``, and step ``s`` takes stream positions
``[s * B, (s + 1) * B)``. Resuming at step ``s`` is therefore just asking for step ``s``.
Process ``p`` of ``P`` reads only its own contiguous ``B / P`` slice of every global batch;
:func:`to_global` assembles the slices into one ``jax.Array`` sharded over the mesh.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen.data.source import Source

Batch = dict[str, np.ndarray]


class Pipeline:
    """The training batches of one process.

    Args:
      source: the training split.
      global_batch_size: examples per step over all processes.
      seed: the shuffling seed.
      process_index, process_count: which slice of each global batch this process loads.
      shuffle: reshuffle every epoch; without it the stream is the source in order, repeated.
    """

    def __init__(
        self,
        source: Source,
        global_batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        shuffle: bool = True,
    ):
        if global_batch_size % process_count:
            raise ValueError(
                f"batch_size {global_batch_size} is not divisible by the {process_count} processes."
            )
        if len(source) == 0:
            raise ValueError("the training split is empty.")
        self.source = source
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // process_count
        self.seed = seed
        self.process_index = process_index
        self.shuffle = shuffle
        self._perms: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            n = len(self.source)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else (
                np.arange(n)
            )
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            self._perms[epoch] = perm
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        """The source indices of this process's slice of the global batch at ``step``."""
        n = len(self.source)
        start = step * self.global_batch_size + self.process_index * self.local_batch_size
        pos = np.arange(start, start + self.local_batch_size, dtype=np.int64)
        epochs, within = np.divmod(pos, n)
        out = np.empty_like(pos)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._permutation(int(e))[within[sel]]
        return out

    def batch(self, step: int) -> Batch:
        """This process's slice of the global batch at ``step``."""
        return self.source[self.indices(step)]

    def iterate(self, start_step: int, prefetch: int = 2) -> Iterator[Batch]:
        """Batches from ``start_step`` on, read ``prefetch`` steps ahead in a background thread."""
        return _Prefetch(self, start_step, prefetch)


class _Prefetch:
    def __init__(self, pipeline: Pipeline, start_step: int, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()

        def work() -> None:
            step = start_step
            while not self._stop.is_set():
                try:
                    item = pipeline.batch(step)
                except Exception as e:  # surfaced in the consumer's thread
                    item = e
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, Exception):
                    return
                step += 1

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def eval_batches(
    source: Source,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    limit: int | None = None,
) -> Iterator[tuple[Batch, np.ndarray]]:
    """The test split in order, as ``(local batch, local mask)`` pairs.

    The last batch is padded to full size by repeating its last example; ``mask`` is 1 for real
    examples and 0 for padding, so sums over ``mask * value`` count every example once.
    """
    n = len(source) if limit is None else min(limit, len(source))
    local = global_batch_size // process_count
    for start in range(0, n, global_batch_size):
        pos = start + process_index * local + np.arange(local)
        mask = (pos < n).astype(np.float32)
        yield source[np.minimum(pos, n - 1)], mask


def to_global(batch: Batch, mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles every process's slice into global arrays sharded along the mesh's ``data`` axis."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
