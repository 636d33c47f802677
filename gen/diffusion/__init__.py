"""Diffusion models: noise schedules and time grids.

A noise schedule is a pure function ``t in [0, 1] -> log-SNR``, decreasing in t; see
``gen.diffusion.schedules``. Sampling time grids live in ``gen.diffusion.timesteps``::

    from gen.diffusion import schedules, timesteps
    sched = schedules.cosine()
    ts = timesteps.uniform_logsnr(sched, 20)
"""

from gen.diffusion import schedules, timesteps
from gen.diffusion.schedules import LearnedSchedule, Schedule

__all__ = ["LearnedSchedule", "Schedule", "schedules", "timesteps"]
