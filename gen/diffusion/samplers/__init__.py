"""Diffusion samplers, each one ``lax.scan`` over a precomputed time grid.

A **denoiser** is a pure function ``denoiser(x_t, t) -> prediction`` on a batch: ``x_t`` has shape
``(B, ...)`` and ``t`` shape ``(B,)``, continuous time in [0, 1]; what it predicts is named by a
``parameterization`` (``"eps"``, ``"x0"``, ``"v"``, ``"score"`` or ``"velocity"``, see
:mod:`gen.diffusion.parameterization`; ``"velocity"`` is ``dx_t/dt`` of the VP path of the
schedule). Class conditioning and classifier-free guidance are wrappers, see
:class:`ClassConditional`, :func:`guided`.

**One API for every sampler**::

    sampler(denoiser, parameterization, schedule, x_T, ts, *, key=None, labels=None,
            clip_x0=None, x0_transform=None, **options) -> x

- ``schedule``: a log-SNR schedule (:mod:`gen.diffusion.schedules`); ``x_t = alpha x_0 + sigma
  eps`` with ``alpha^2 = sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)`` (VP).
- ``x_T``: the starting sample at time ``ts[0]``, in the VP scale of that time (``N(0, I)`` for
  pure noise). Computation is in float32 (float64 under ``jax.enable_x64`` for float64 inputs).
- ``ts``: a decreasing 1-D array of ``N + 1`` times, N >= 1 steps. Step i goes from ``ts[i]`` to
  ``ts[i + 1]``; the model is evaluated at ``ts[0..N-1]`` (Heun also at the interior ``ts[i+1]``,
  churned samplers at raised times). **The final time** ``ts[N] = 0`` **is the clean data
  itself** (``alpha = 1``, ``sigma = 0``, ``lambda = +inf``), whatever ``schedule(0)`` is:
  diffusers' ``set_alpha_to_one=True`` (DDIM) and ``final_sigmas_type="zero"`` (DPM-Solver,
  Euler, Heun), k-diffusion's and EDM's appended ``sigma = 0``. A final ``ts[N] > 0`` lands at
  ``lambda(ts[N])``: e.g. ``1 / T`` is diffusers' ``set_alpha_to_one=False`` (``alphas_cumprod[0]``)
  and ``final_sigmas_type="sigma_min"``. Only the last entry gets this meaning; an interior
  ``t = 0`` is ``schedule(0)`` (EDM/Karras grids evaluate the model at ``sigma_min``, which the
  EDM schedule puts at t = 0, then step to ``sigma = 0``: ``ts = [..., 0, 0]``). Interior times
  decrease strictly; the final one may equal the one before (a last step of length zero, which
  only re-composes x from the possibly clipped x0, as diffusers' DDIM with
  ``set_alpha_to_one=False`` on a grid that ends at timestep 0).
  Build grids with :func:`times_from_timesteps` (diffusers' integer timesteps),
  :func:`karras_times` (diffusers' ``use_karras_sigmas=True`` in one call),
  :func:`times_from_sigmas` (any noise levels on any schedule) or
  :func:`gen.diffusion.timesteps.uniform_logsnr`.
- ``key``: needed by stochastic samplers. Step i draws ``normal(split(key, N)[i], x.shape)``.
- ``labels``: class labels, required by (and only accepted by) a :class:`ClassConditional`
  denoiser.
- **Learned variance.** A denoiser of an Improved-DDPM model returns 2C channels on the last
  axis (its prediction, then v). Only ``ddpm(..., variance="learned_range")`` uses v; every
  other sampler (and ``ddpm`` with a fixed variance) refuses a 2C output with a ValueError:
  wrap the denoiser with :func:`mean_only` to sample it there, ignoring the variance (as
  diffusers' DDIM and DPM-Solver pipelines do). Guide it with ``guided(...,
  learned_variance=True)``.
- ``clip_x0``: clip the predicted x0 to ``[-clip_x0, clip_x0]`` (diffusers' ``clip_sample``).
- ``x0_transform``: a function applied to the predicted x0 (shape ``(B, ...)``) before the
  clipping, e.g. :func:`dynamic_threshold` (diffusers' ``thresholding=True``). Both act on x0
  only; the eps every sampler uses stays the model's (diffusers' default).

Concrete grids are checked (a ValueError for times outside [0, 1], a grid that does not
decrease, integer timesteps, or fewer than one step); a traced grid is not, and the schedules
clip times outside [0, 1] into it.

**Compilation.** Each sampler is one ``lax.scan`` and jit-compiles as a whole: the number of steps
(the length of ``ts``), the parameterization, the denoiser, the schedule and the options are
static; ``x_T``, ``ts``, ``key`` and ``labels`` may be traced::

    >>> import jax
    >>> from functools import partial
    >>> from gen.diffusion import samplers, schedules, timesteps
    >>> sched = schedules.ddpm_linear()
    >>> ts = samplers.times_from_timesteps(timesteps.leading(1000, 50), 1000)
    >>> net = lambda x_t, t: 0.1 * x_t                # any (x_t, t) -> eps function
    >>> run = jax.jit(partial(samplers.ddim, net, "eps", sched))
    >>> run(jax.random.normal(jax.random.key(0), (16, 8)), ts).shape
    (16, 8)

**VP and VE.** Euler, Heun and Euler ancestral (Karras et al. 2022; k-diffusion) integrate in the
variance-exploding variable ``x_ve = x / alpha = x_0 + sigma_ve eps`` with ``sigma_ve =
sigma / alpha = exp(-lambda / 2)``; the denoiser still sees ``x = alpha x_ve`` at time t (what
diffusers' ``scale_model_input`` does). ``x_T`` comes in and the result goes out in the VP scale
(at ``ts[N] = 0`` the two coincide). They need a finite log-SNR at ``ts[0]``: after
zero-terminal-SNR rescaling, start below t = 1.

**Layout.** One concept per private module, all re-exported here: ``_grids`` (time grids and
their checks), ``_conditioning`` (class labels, guidance), ``_core`` (the shared predictor and
setup), ``_thresholding`` (x0 transforms), ``_ddim`` (DDPM, DDIM), ``_dpm_solver``
(DPM-Solver++ 2M, 3M, 2M SDE), ``_karras`` (Euler, Heun, Euler ancestral).
"""

from __future__ import annotations

from gen.diffusion.parameterization import PARAMETERIZATIONS
from gen.diffusion.samplers._conditioning import (
    ClassConditional,
    Denoiser,
    class_conditional,
    guided,
    mean_only,
    with_labels,
)
from gen.diffusion.samplers._core import Sampler
from gen.diffusion.samplers._ddim import ddim, ddpm
from gen.diffusion.samplers._dpm_solver import dpmpp_2m, dpmpp_2m_sde, dpmpp_3m
from gen.diffusion.samplers._grids import (
    diffusers_ddim_targets,
    karras_times,
    times_from_sigmas,
    times_from_timesteps,
)
from gen.diffusion.samplers._karras import euler, euler_ancestral, heun
from gen.diffusion.samplers._thresholding import X0Transform, dynamic_threshold

__all__ = [
    "PARAMETERIZATIONS",
    "SAMPLERS",
    "ClassConditional",
    "Denoiser",
    "Sampler",
    "X0Transform",
    "class_conditional",
    "ddim",
    "ddpm",
    "diffusers_ddim_targets",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_3m",
    "dynamic_threshold",
    "euler",
    "euler_ancestral",
    "get_sampler",
    "guided",
    "heun",
    "karras_times",
    "mean_only",
    "times_from_sigmas",
    "times_from_timesteps",
    "with_labels",
]

SAMPLERS: dict[str, Sampler] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_3m": dpmpp_3m,
    "euler": euler,
    "heun": heun,
    "euler_ancestral": euler_ancestral,
}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`), or a ValueError listing them."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}."
        ) from None
