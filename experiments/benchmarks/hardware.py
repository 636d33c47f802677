"""What a benchmark runs on: the cores it may use, and the device JAX computed on, by name.

Import this module before anything starts JAX's CPU backend: ``pin_threads`` must restrict the
process's cores first. JAX itself is imported inside the functions that need it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def pin_threads(threads: int | None) -> int:
    """Restricts this process to ``threads`` cores (before JAX starts) and returns the count."""
    cores = sorted(os.sched_getaffinity(0))
    threads = len(cores) if threads is None else threads
    if not 1 <= threads <= len(cores):
        raise SystemExit(f"--threads must lie in 1..{len(cores)} (this process's cores).")
    os.sched_setaffinity(0, cores[:threads])
    return threads


def cpu_name() -> str:
    """The CPU's model name (``AMD EPYC ...``), or the machine type where it is unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_description(threads: int | None = None) -> str:
    """``CPU (x86_64, 2 cores)``, with the threads the benchmark was pinned to when given."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    used = f", {threads} thread{'s' * (threads != 1)} used" if threads is not None else ""
    return f"CPU ({platform.machine()}, {cores} core{'s' * (cores != 1)}{used})"


def device_description(device=None) -> str:
    """The device that ran JAX's computation: ``NVIDIA H200 (gpu, 1 device)`` or the CPU's."""
    import jax

    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return cpu_description()
    count = len(jax.devices(device.platform))
    return f"{device.device_kind} ({device.platform}, {count} device{'s' * (count != 1)})"
