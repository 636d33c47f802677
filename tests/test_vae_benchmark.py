"""The VAE benchmark's GPU item runs end to end, here on CPU at a tiny size (no GPU needed)."""

import pytest

from experiments.benchmarks import vae


@pytest.mark.slow  # the GPU item on a CPU: a smoke test of code that matters on a GPU
def test_gpu_item_measures_bf16_conv_vae_throughput_at_a_tiny_size():
    r = vae.measure_gpu(repeats=2, batch=2, image=(8, 8, 3), channels=(4, 8), latent=4)
    assert r["dtype"] == "bfloat16" and r["images_per_s"] > 0 and r["params"] > 0
    text = vae.gpu_table(r)
    assert "images/s" in text and "batch 2" in text and "bfloat16" in text
    assert "skipped" in vae.gpu_table(None)


def test_header_and_table_say_what_ran():
    assert "GPU item: JAX's default device is CPU (" in vae.header(["gpu"], 5, 1, 2)
    assert "2 threads used" in vae.header(["train"], 5, 1, 2)
    table = vae.cpu_table({"gen_s": 0.002, "pythae_s": 0.004, "gen_compile_s": 1.0,
                           "gen_first_loss": 540.0, "pythae_first_loss": 541.0}, None)
    assert "2.00x" in table and "1.5x met" in table
