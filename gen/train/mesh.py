"""One device mesh with a ``data`` axis: the batch is sharded over it, the params replicated."""

from __future__ import annotations

import logging
import os

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from gen.errors import ConfigError

_COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")


def maybe_initialize_distributed() -> bool:
    """Calls ``jax.distributed.initialize()`` when the environment describes several processes.

    That is: a coordinator address in ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID`` where no cluster manager tells them, e.g. processes started by hand);
    a multi-host TPU slice (``TPU_WORKER_HOSTNAMES`` naming more than one host); SLURM with more
    than one task; or ``GEN_DISTRIBUTED=1`` to force it (JAX then auto-detects the cluster).
    Call it before anything touches a device. Returns whether it initialized.
    """
    env = os.environ
    multi_tpu = "," in env.get("TPU_WORKER_HOSTNAMES", "")
    multi_slurm = int(env.get("SLURM_NTASKS", "1") or 1) > 1
    wanted = (
        env.get("GEN_DISTRIBUTED") == "1"
        or any(env.get(v) for v in _COORDINATOR_VARS)
        or multi_tpu
        or multi_slurm
    )
    if not wanted or jax.distributed.is_initialized():
        return False
    kwargs = {}
    for name, var in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if env.get(var):
            try:
                kwargs[name] = int(env[var])
            except ValueError:
                raise ConfigError(f"{var}={env[var]!r} must be an integer.") from None
    jax.distributed.initialize(**kwargs)
    logging.info("process %d of %d", jax.process_index(), jax.process_count())
    return True


def make_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, with the axis ``data``."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of params and state: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: split along its leading axis over ``data``."""
    return NamedSharding(mesh, PartitionSpec("data"))
