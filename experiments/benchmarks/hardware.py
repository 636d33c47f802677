"""What a benchmark ran on, for the header of its table: the device JAX computed on, by name."""

from __future__ import annotations

import os
import platform

import jax


def cpu_description(threads: int | None = None) -> str:
    """``CPU (x86_64, 2 cores)``, with the threads the benchmark was pinned to when given."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    used = f", {threads} thread{'s' * (threads != 1)} used" if threads is not None else ""
    return f"CPU ({platform.machine()}, {cores} core{'s' * (cores != 1)}{used})"


def device_description(device: jax.Device | None = None) -> str:
    """The device that ran JAX's computation: ``NVIDIA H200 (gpu, 1 device)`` or the CPU's."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return cpu_description()
    count = len(jax.devices(device.platform))
    return f"{device.device_kind} ({device.platform}, {count} device{'s' * (count != 1)})"
