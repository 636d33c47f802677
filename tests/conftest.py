"""Test setup: 8 fake CPU devices, so that sharded code runs on a real multi-device mesh.

XLA_FLAGS must be set before jax is imported anywhere, which is why it is done here.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

# Tests check numbers, not speed: most XLA optimizations only cost compile time here.
jax.config.update("jax_disable_most_optimizations", True)
