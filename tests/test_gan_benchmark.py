"""The GAN benchmark's GPU item runs end to end, here on CPU at a tiny size (no GPU needed), and
its tables say what ran."""

import math

import pytest

from experiments.benchmarks import gan


@pytest.mark.slow  # the GPU item on a CPU: a smoke test of code that matters on a GPU
def test_gpu_item_measures_the_bf16_sngan_step_at_a_tiny_size():
    r = gan.measure_gpu(repeats=1, batch=2, ngf=8, ndf=8, n_dis=1, warmup=0)
    assert r["step_s"] > 0 and math.isfinite(r["real_images_per_s"])
    assert r["real_images_per_s"] == pytest.approx(2 / r["step_s"])
    text = gan.gpu_table(r)
    assert "bf16" in text and "n_dis = 1" in text and "2 images per update" in text
    assert "skipped" in gan.gpu_table(None)


def test_headers_and_tables_say_what_ran():
    both = gan.header(["mlp", "gpu"], repeats=3, threads=2, rounds=1)
    assert "CPU items: CPU (" in both and "2 threads used" in both and "GPU item:" in both
    row = {"gen_s": 0.01, "torch_s": 0.03, "gen_compile_s": 1.0, "batch": 100, "n_dis": 1,
           "packing": 4, "penalty": "r1 (0.1)", "loss": "non_saturating",
           "params": {"generator": [10, 10], "discriminator": [5, 5]}}
    table = gan.pair_table({"mlp": row, "dcgan": {**row, "torch_s": 0.015, "packing": 1}})
    assert "3.00x | 2x met" in table and "1.50x | report" in table and "packing 4" in table
