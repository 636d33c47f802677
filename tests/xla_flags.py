"""The XLA flags of the test session (conftest.py) and of the processes its tests start.

A subprocess whose numbers are compared with this process's must compile with the same flags:
the legacy and the fusion CPU emitters round some fused expressions differently.
"""

from importlib.metadata import PackageNotFoundError, version


def has_legacy_cpu_emitters() -> bool:
    """Whether this jaxlib's XLA still has its legacy CPU emitters (removed in jaxlib 0.11).

    Compiling is most of the suite's time (thousands of small, distinct programs), and on jaxlib
    0.10 the legacy emitters compile them in about half the time of the fusion emitters. An
    unknown flag in XLA_FLAGS aborts the process, hence the version check before jax starts.
    """
    try:
        major, minor = (int(part) for part in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) < (0, 11)


def xla_flags(devices: int = 8) -> str:
    """``devices`` fake CPU devices, one thread per computation (the tests' arrays are tiny and
    the two xdist workers already fill both cores), and the faster-compiling emitters."""
    flags = [f"--xla_force_host_platform_device_count={devices}",
             "--xla_cpu_multi_thread_eigen=false"]
    if has_legacy_cpu_emitters():
        flags.append("--xla_cpu_use_fusion_emitters=false")
    return " ".join(flags)
