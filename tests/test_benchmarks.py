"""The benchmarks' GPU item runs end to end, here on CPU at a tiny size (no GPU is needed)."""

import math

import pytest

from experiments.benchmarks import diffusion


@pytest.mark.slow  # the GPU item on a CPU: a smoke test of code that matters on a GPU
def test_gpu_item_measures_throughput_and_mfu_at_a_tiny_size():
    unet = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), num_groups=4)
    r = diffusion.measure_gpu(repeats=2, batch=2, peak_n=128, unet=unet)
    assert r["train_flops"] > 0 and r["peak_flops"] > 0 and r["images_per_s"] > 0
    assert math.isfinite(r["mfu"]) and r["mfu"] > 0
    # MFU is from the analytic count; on CPU, XLA counts the same convs and matmuls plus the
    # elementwise ops (on GPU it would miss the cuDNN convolutions).
    assert r["mfu"] == pytest.approx(r["train_flops"] / r["train_s"] / r["peak_flops"])
    assert 0.8 * r["xla_train_flops"] < r["train_flops"] < r["xla_train_flops"]
    text = diffusion.gpu_table(r)
    assert "MFU" in text and "batch 2" in text and "128^3" in text
    assert "analytic" in text and "XLA's GFLOP/image" in text and "cuDNN" in text
    assert "skipped" in diffusion.gpu_table(None)


def test_headers_say_what_ran():
    from experiments.benchmarks import hardware

    assert hardware.device_description().startswith("CPU (")
    gpu_only = diffusion.header(["gpu"], repeats=3, threads=2, rounds=1)
    assert "CPU items" not in gpu_only and "GPU item: JAX's default device is CPU (" in gpu_only
    both = diffusion.header(["sampler", "gpu"], repeats=3, threads=2, rounds=1)
    assert "CPU items: CPU (" in both and "2 threads used" in both
