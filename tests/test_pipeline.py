"""The input pipeline: deterministic shuffling, resumption, process slices, sharding."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from gen.data.pipeline import Pipeline, eval_batches, to_global
from gen.data.source import ArraySource
from gen.train.mesh import make_mesh


def _source(n: int = 50) -> ArraySource:
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return ArraySource(x, np.arange(n) % 7)


def test_same_seed_same_batches_and_other_seed_differs():
    a, b, c = Pipeline(_source(), 8, 1), Pipeline(_source(), 8, 1), Pipeline(_source(), 8, 2)
    for step in (0, 3, 17):
        np.testing.assert_array_equal(a.batch(step)["x"], b.batch(step)["x"])
    assert not np.array_equal(a.indices(0), c.indices(0))


def test_each_epoch_is_a_permutation_and_epochs_differ():
    n, bs = 40, 8  # 5 steps per epoch
    p = Pipeline(_source(n), bs, seed=3)
    epoch0 = np.concatenate([p.indices(s) for s in range(5)])
    epoch1 = np.concatenate([p.indices(s) for s in range(5, 10)])
    assert sorted(epoch0) == list(range(n)) and sorted(epoch1) == list(range(n))
    assert not np.array_equal(epoch0, epoch1)


def test_batches_straddle_epoch_boundaries():
    n, bs = 10, 4
    p = Pipeline(_source(n), bs, seed=0)
    stream = np.concatenate([p.indices(s) for s in range(5)])  # 20 positions = 2 epochs
    assert sorted(stream[:10]) == list(range(n)) and sorted(stream[10:]) == list(range(n))


def test_iterate_resumes_at_any_step():
    p = Pipeline(_source(), 6, seed=5)
    it = p.iterate(start_step=7)
    try:
        for step in range(7, 12):
            np.testing.assert_array_equal(next(it)["x"], p.batch(step)["x"])
    finally:
        it.close()


def test_process_slices_tile_the_global_batch():
    src, bs, procs = _source(), 12, 3
    whole = Pipeline(src, bs, seed=9)
    parts = [Pipeline(src, bs, seed=9, process_index=i, process_count=procs) for i in range(procs)]
    for step in (0, 4, 9):
        np.testing.assert_array_equal(
            np.concatenate([p.indices(step) for p in parts]), whole.indices(step))


def test_unshuffled_stream_is_in_order():
    p = Pipeline(_source(10), 4, seed=0, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([p.indices(s) for s in range(3)]),
                                  np.arange(12) % 10)


def test_eval_batches_cover_every_example_once():
    src = _source(23)
    seen = []
    for batch, mask in eval_batches(src, 8):
        assert batch["x"].shape == (8, 3)
        seen.extend(batch["x"][mask > 0, 0].astype(int))
    assert sorted(seen) == list(range(23))


def test_bad_batch_for_processes_is_refused():
    with pytest.raises(ValueError, match="not divisible"):
        Pipeline(_source(), 10, seed=0, process_count=3)


def test_to_global_shards_over_the_data_axis():
    mesh = make_mesh()
    assert mesh.size == jax.device_count() == 8
    batch = Pipeline(_source(), 16, seed=0).batch(0)
    arr = to_global(batch, mesh)
    assert arr["x"].sharding.spec == PartitionSpec("data")
    assert len(arr["x"].addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(arr["x"]), batch["x"])
    np.testing.assert_array_equal(np.asarray(arr["y"]), batch["y"])
