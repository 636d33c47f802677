"""The metrics benchmark's Fréchet item runs end to end at a tiny size, and its exact cases are
exact: gen's error is at rounding level there."""

from experiments.benchmarks import metrics as bench


def test_frechet_item_at_a_tiny_size():
    rows = bench.measure_frechet(dim=16, repeats=1, samples=6)
    assert len(rows) == 3
    for r in rows:
        assert abs(r["ours"] - r["exact"]) < 1e-9 * abs(r["exact"])
        assert r["ours_s"] > 0 and r["sqrtm_s"] > 0
    table = bench.frechet_table(rows)
    assert "d=16" in table and "N=6 < d=16" in table and table.count("\n") == 4
