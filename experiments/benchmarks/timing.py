"""Wall-clock timing for the benchmarks: JAX's asynchronous outputs are waited for."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def median_seconds(call: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``call()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return statistics.median(times)
