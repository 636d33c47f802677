"""Noise schedules: pure functions of continuous time that return the log-SNR.

A schedule is a pure, elementwise function ``t in [0, 1] -> lambda(t)``, the log signal-to-noise
ratio, decreasing in t: t = 0 is (nearly) clean data and t = 1 is (nearly) pure noise::

    Schedule = Callable[[Array], Array]

Everything else derives from lambda:

- VP: ``alpha^2 = sigmoid(lambda)`` (diffusers' ``alphas_cumprod``), ``sigma^2 = sigmoid(-lambda)``;
- EDM / VE noise level: ``sigma_edm = sigma / alpha = exp(-lambda / 2)``;
- SNR: ``exp(lambda)``; derivatives through ``jax.jvp`` (:func:`dlogsnr_dt`).

Conventions shared by every schedule here:

- **Time outside [0, 1] is clipped into it.** The schedule is constant outside, so
  ``lambda(-0.5) == lambda(0)`` and ``lambda(1.5) == lambda(1)``, with zero t-derivative there.
  At t = 0 and t = 1 themselves the derivative is the one-sided derivative from inside.
- **dtype.** Integer and low-precision t are computed in float32; float64 t (under
  ``jax.enable_x64``) stays float64.
- **Finite ends.** Every constructor returns finite lambda at t = 0 and t = 1. The only infinite
  value is ``lambda = -inf`` at t = 1 after zero-terminal-SNR rescaling (or from betas ending in 1);
  there alpha = 0, sigma = 1, and the t-derivative of lambda is reported as 0 (the true one is
  -inf) so that nothing derived from it, values or gradients, is NaN.
- **Integer timesteps.** diffusers' integer timestep ``i in 0..T-1`` is continuous time
  ``t_i = (i + 1) / T``: ``alpha_bar_i = sigmoid(lambda(t_i))``. So t = 1 is the last timestep
  ``T - 1``, and t = 0 is the clean data before timestep 0. This is the convention under which
  diffusers' ``squaredcos_cap_v2`` betas discretize the continuous cosine ``alpha_bar(t)``
  (``beta_i = 1 - alpha_bar(t_i) / alpha_bar(t_i - 1/T)``), and under which vdm's
  ``discretize`` (``t -> ceil(t T) / T``) lands on the grid. See :func:`timestep_to_t`.

Example::

    >>> import jax.numpy as jnp
    >>> from gen.diffusion import schedules as S
    >>> sched = S.shift(S.cosine(), 2.0)           # a cosine schedule for 2x the resolution
    >>> alpha, sigma = S.alpha_sigma(sched, jnp.linspace(0.0, 1.0, 5))
    >>> abar = S.discrete_alphas_cumprod(S.ddpm_linear(), 1000)   # == diffusers' alphas_cumprod
    >>> sched = S.get_schedule("cosine")            # by name, from ``S.SCHEDULES``

One concept a file: ``_conversions`` (log-SNR to alpha, sigma, the EDM sigma; timesteps),
``_discrete`` (beta-based schedules and the discrete view), ``_continuous`` (cosine, sigmoid, EDM),
``_learned`` (VDM), ``_transforms`` (shift, interpolate, discretize, zero-terminal-SNR rescaling)
and ``_lookup`` (by name). All public names are re-exported here.
"""

from gen.diffusion.schedules._common import Schedule
from gen.diffusion.schedules._common import _check_steps as _check_steps  # samplers, ode use it
from gen.diffusion.schedules._continuous import cosine, edm, sigmoid
from gen.diffusion.schedules._conversions import (
    alpha_bar,
    alpha_sigma,
    alpha_sigma_and_derivatives,
    alpha_sigma_from_logsnr,
    dlogsnr_dt,
    edm_sigma,
    edm_sigma_from_logsnr,
    logsnr_and_derivative,
    logsnr_from_alpha_bar,
    logsnr_from_edm_sigma,
    snr,
    t_to_timestep,
    timestep_to_t,
)
from gen.diffusion.schedules._discrete import (
    ddpm_linear,
    discrete_alphas_cumprod,
    from_betas,
    scaled_linear,
)
from gen.diffusion.schedules._learned import LearnedSchedule, learned
from gen.diffusion.schedules._lookup import SCHEDULES, get_schedule
from gen.diffusion.schedules._transforms import (
    discretize,
    interpolate,
    rescale_zero_terminal_snr,
    shift,
)

__all__ = [
    "SCHEDULES",
    "LearnedSchedule",
    "Schedule",
    "alpha_bar",
    "alpha_sigma",
    "alpha_sigma_and_derivatives",
    "alpha_sigma_from_logsnr",
    "cosine",
    "ddpm_linear",
    "discrete_alphas_cumprod",
    "discretize",
    "dlogsnr_dt",
    "edm",
    "edm_sigma",
    "edm_sigma_from_logsnr",
    "from_betas",
    "get_schedule",
    "interpolate",
    "learned",
    "logsnr_and_derivative",
    "logsnr_from_alpha_bar",
    "logsnr_from_edm_sigma",
    "rescale_zero_terminal_snr",
    "scaled_linear",
    "shift",
    "sigmoid",
    "snr",
    "t_to_timestep",
    "timestep_to_t",
]
