"""Diffusion models and flow matching: schedules, process, losses, samplers, ODEs.

A noise schedule is a pure function ``t in [0, 1] -> log-SNR``, decreasing in t; see
``gen.diffusion.schedules``. Everything else is built on it::

    from gen.diffusion import samplers, schedules, timesteps
    sched = schedules.cosine()
    ts = samplers.times_from_timesteps(timesteps.trailing(1000, 20), 1000)
    x0 = samplers.ddim(denoiser, "eps", sched, x_T, ts)

Modules: ``schedules`` and ``timesteps`` (time grids), ``parameterization`` (eps, x0, v, score,
velocity), ``process`` (forward process and denoising losses), ``losses`` (VLB, VDM ELBO),
``samplers`` (each one ``lax.scan``), ``ode`` (adaptive solver, exact likelihood) and
``flow_matching``.
"""

from gen.diffusion import (
    flow_matching,
    losses,
    ode,
    parameterization,
    process,
    samplers,
    schedules,
    timesteps,
)
from gen.diffusion.schedules import LearnedSchedule, Schedule

__all__ = [
    "LearnedSchedule",
    "Schedule",
    "flow_matching",
    "losses",
    "ode",
    "parameterization",
    "process",
    "samplers",
    "schedules",
    "timesteps",
]
