"""Likelihood losses of diffusion models, in nats per example: the discrete VLB of DDPM and the
continuous-time ELBO of VDM, with their Gaussian building blocks.

Conventions are those of :mod:`gen.diffusion.process` (data ``(B, ...)``, per-example t ``(B,)``,
networks ``apply(params, x_t, t_input, labels=None)``, ``t_input = noise_input(t, logsnr)``,
float32). Every value is a negative log-likelihood bound in nats per example, summed over the
data dimensions; bits/dim = nats / (D log 2) (see ``gen.data.preprocess`` for 8-bit units).

Discrete VLB (Ho et al. 2020, eqs. 5-7 and 13; Nichol & Dhariwal 2021)
----------------------------------------------------------------------
With T steps, diffusers' timestep ``i in 0..T-1`` is ``t_i = (i + 1) / T`` and the data is
``x_{-1} = x0`` (the paper's ``x_{i+1}`` is our ``x_i``). In log-SNR form, with ``s`` the step
before ``t`` and ``d = lambda_t - lambda_s < 0``:

- ``beta_t = sigma_t^2 (1 - e^d)``, ``beta_tilde_t = sigma_s^2 (1 - e^d)`` (the posterior
  variance of ``q(x_s | x_t, x0)``), and the posterior mean is
  ``mu = alpha_s (1 - e^d) x0 + (alpha_t / alpha_s) (sigma_s^2 / sigma_t^2) x_t``;
- the model ``p(x_s | x_t)`` is the same Gaussian with ``x0_hat`` in place of x0, and a fixed
  variance ``beta_tilde_t`` ("small") or ``beta_t`` ("large"), or a learned one (below);
- ``L = L_prior + sum_{i=1}^{T-1} KL(q(x_{i-1} | x_i, x0) || p(x_{i-1} | x_i)) + L_0``, with
  ``L_prior = KL(q(x_{T-1} | x0) || N(0, I))`` and the decoder ``L_0 = -log p(x0 | x_0)``.

**Learned range** (Nichol & Dhariwal 2021, eq. 15; ``variance="learned_range"``): the network
returns 2C channels on the last axis, its prediction and ``v``
(:func:`gen.diffusion.process.split_variance`), and the reverse variance is elementwise
``log Sigma = f log beta_t + (1 - f) log beta_tilde_t``, ``f = (v + 1) / 2``. The decoder's
variance at timestep 0 is the same mix of ``beta_0 = sigma_0^2`` and ``beta_tilde_1``
(improved-diffusion's clipped posterior variance). :func:`hybrid_loss` trains such a model with
``L_simple + lambda L_vlb``.

With the small variance each KL is ``(SNR_s - SNR_t) / 2 ||x0 - x0_hat||^2``, as in VDM's
discrete-time loss.
The decoder is either improved-diffusion's discretized Gaussian for 8-bit data scaled to
[-1, 1] (bins ``2k/255 - 1 +- 1/255``; the exact normal CDF where iDDPM uses a tanh
approximation), or, for continuous data, a Gaussian density. Its mean is ``x0_hat`` at
timestep 0; its variance is ``beta_tilde`` of timestep 1 (``"posterior"``, Ho's and iDDPM's
choice, the default for the discretized decoder) or ``sigma_0^2 / alpha_0^2 = exp(-lambda_0)``
(``"marginal"``, the default for the Gaussian decoder).

VDM ELBO (Kingma et al. 2021)
-----------------------------
``-log p(x) <= L_prior + L_recon + L_diffusion`` with ``gamma = -lambda``:

- ``L_prior = KL(q(z_1 | x) || N(0, I))``;
- ``L_recon = -E log p(x | z_0)``: for continuous data the Gaussian ``N(x; z_0 / alpha_0,
  exp(-lambda_0))``, whose expectation over ``z_0`` is exact, ``D/2 (1 + log 2 pi - lambda_0)``;
  for 8-bit data VDM's factorized decoder, a softmax over the 256 values ``2k/255 - 1`` with
  logits ``-(z_0 / alpha_0 - x_k)^2 e^lambda_0 / 2``;
- ``L_diffusion`` in continuous time (VDM's ``L_inf``): ``1/2 E_t[-lambda'(t) ||eps -
  eps_hat||^2]``, ``lambda'`` from ``jax.jvp``; with T steps (VDM's ``L_T``):
  ``T/2 E_i[expm1(lambda_s - lambda_t) ||eps - eps_hat||^2]``, ``s = t - 1/T``.

A learned schedule (:func:`gen.diffusion.schedules.learned`) is passed as its
``LearnedSchedule``; the loss then takes ``schedule_params`` and is differentiable in them.
With the schedule's ends fixed, L_diffusion's expectation does not depend on its interior
(when the network sees lambda, not t), so :func:`vdm_value_and_grads` gives the schedule VDM's
variance-minimizing gradient instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from gen.diffusion import process, schedules
from gen.diffusion.parameterization import (
    check_parameterization,
    convert,
    from_x0_eps,
    to_x0_eps,
)
from gen.diffusion.process import (
    Apply,
    LossFn,
    NoiseInput,
    Params,
    _check_batch,
    _check_choice,
    _check_like,
    _check_per_example,
    _f32,
    _log1mexp,
    _need_key,
    _reduce,
    call_network,
    call_network_with_variance,
    coefficients,
    learned_range_logvar,
    step_log_variances,
)
from gen.diffusion.schedules import LearnedSchedule, Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

__all__ = [
    "discrete_vlb",
    "discrete_vlb_loss",
    "discrete_vlb_terms",
    "discretized_gaussian_log_likelihood",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "hybrid_loss",
    "prior_kl",
    "vdm_discretized_log_likelihood",
    "vdm_loss",
    "vdm_value_and_grads",
]

VARIANCES = ("small", "large", "learned_range")
DECODERS = ("discretized", "gaussian")
DECODER_VARIANCES = ("posterior", "marginal")
_LOG_2PI = math.log(2.0 * math.pi)
_HALF_BIN = 1.0 / 255.0  # 8-bit data at 2k/255 - 1: bins of width 2/255


# ----------------------------------------------------------------------------------------------
# Gaussian building blocks (elementwise)
# ----------------------------------------------------------------------------------------------


def _log_diff_exp(a: Array, b: Array) -> Array:
    """``log(exp(a) - exp(b))`` for ``b < a``."""
    return a + _log1mexp(b - a)


def gaussian_kl(
    mean1: ArrayLike, logvar1: ArrayLike, mean2: ArrayLike, logvar2: ArrayLike
) -> Array:
    """``KL(N(mean1, e^logvar1) || N(mean2, e^logvar2))``, elementwise, broadcasting:
    ``(logvar2 - logvar1 + expm1(logvar1 - logvar2) + (mean1 - mean2)^2 e^-logvar2) / 2``."""
    mean1, logvar1, mean2, logvar2 = map(_f32, (mean1, logvar1, mean2, logvar2))
    u = logvar1 - logvar2
    return 0.5 * (jnp.expm1(u) - u + jnp.square(mean1 - mean2) * jnp.exp(-logvar2))


def gaussian_log_likelihood(x: ArrayLike, mean: ArrayLike, logvar: ArrayLike) -> Array:
    """``log N(x; mean, e^logvar)``, elementwise."""
    x, mean, logvar = map(_f32, (x, mean, logvar))
    return -0.5 * (_LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))


def discretized_gaussian_log_likelihood(
    x: ArrayLike, mean: ArrayLike, log_scale: ArrayLike
) -> Array:
    """``log P(x)`` of a Gaussian discretized to 8-bit data scaled to [-1, 1] (Ho et al. 2020,
    eq. 13; iDDPM's ``discretized_gaussian_log_likelihood``), elementwise.

    ``x`` lies on the grid ``2k/255 - 1``; ``P(x) = Phi(upper) - Phi(lower)`` over the bin
    ``x +- 1/255`` of ``N(mean, e^(2 log_scale))``, with the outer bins extended to -inf
    (``x < -0.999``) and +inf (``x > 0.999``). Evaluated with the exact ``log_ndtr`` in log
    space (either tail), and as ``log(pdf * width)`` when the bin is under 1e-3 standard
    deviations wide, where the CDF difference would cancel in float32.
    """
    x, mean, log_scale = map(_f32, (x, mean, log_scale))
    inv = jnp.exp(-log_scale)
    centered = x - mean
    upper = inv * (centered + _HALF_BIN)
    lower = inv * (centered - _HALF_BIN)
    log_cdf_upper = log_ndtr(upper)  # log P(X <= x + 1/255)
    log_sf_lower = log_ndtr(-lower)  # log P(X >= x - 1/255)
    right = lower > 0  # both ends right of the mean: use the survival function
    mid = jnp.where(
        right,
        _log_diff_exp(log_sf_lower, log_ndtr(-upper)),
        _log_diff_exp(log_cdf_upper, log_ndtr(lower)),
    )
    width = 2.0 * _HALF_BIN * inv
    narrow = -0.5 * (_LOG_2PI + jnp.square(inv * centered)) + jnp.log(width)
    mid = jnp.where(width < 1e-3, narrow, mid)
    return jnp.where(x < -0.999, log_cdf_upper, jnp.where(x > 0.999, log_sf_lower, mid))


def vdm_discretized_log_likelihood(
    x: ArrayLike, z_rescaled: ArrayLike, logsnr_0: ArrayLike
) -> Array:
    """VDM's 8-bit decoder ``log p(x | z_0)``, elementwise (``EncDec.logprob``): a softmax over
    the 256 values ``x_k = 2k/255 - 1`` with logits ``-(z_0/alpha_0 - x_k)^2 e^lambda_0 / 2``.
    ``x`` lies on that grid; ``z_rescaled = z_0 / alpha_0``; ``logsnr_0`` broadcasts against it.
    """
    x, z, lam0 = map(_f32, (x, z_rescaled, logsnr_0))
    values = jnp.arange(256, dtype=jnp.float32) * (2.0 / 255.0) - 1.0
    lam0 = jnp.broadcast_to(lam0, z.shape)
    logits = -0.5 * jnp.square(z[..., None] - values) * jnp.exp(lam0)[..., None]
    logp = jax.nn.log_softmax(logits, axis=-1)
    index = jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.int32)
    return jnp.take_along_axis(logp, index[..., None], axis=-1)[..., 0]


def _sum_event(v: Array) -> Array:
    return jnp.sum(v, axis=tuple(range(1, v.ndim)))


def _prior_kl_from_logsnr(x0: Array, logsnr_1: Array) -> Array:
    # KL(N(alpha x, sigma^2) || N(0, 1)) = (alpha^2 x^2 + sigma^2 - log sigma^2 - 1) / 2
    #                                    = (alpha^2 (x^2 - 1) + softplus(lambda)) / 2
    alpha_sq = jax.nn.sigmoid(logsnr_1)
    return 0.5 * _sum_event(alpha_sq * (jnp.square(x0) - 1.0) + jax.nn.softplus(logsnr_1))


def prior_kl(schedule: Schedule, x0: ArrayLike) -> Array:
    """``KL(q(x_1 | x0) || N(0, I))`` at t = 1, summed over the data dimensions: ``(B,)`` nats.
    Also the DDPM prior term ``L_T``, since the last timestep ``T - 1`` is at t = 1."""
    x0 = _f32(x0)
    _check_batch(x0)
    return _prior_kl_from_logsnr(x0, schedule(jnp.ones((), jnp.float32)))


# ----------------------------------------------------------------------------------------------
# Discrete VLB (DDPM)
# ----------------------------------------------------------------------------------------------


def _check_vlb_options(
    num_steps: int, variance: str, decoder: str, decoder_variance: str | None
) -> tuple[int, str]:
    num_steps = schedules._check_steps(num_steps)
    if num_steps < 2:
        raise ValueError(f"the discrete VLB needs num_steps >= 2, got {num_steps}.")
    _check_choice(variance, VARIANCES, "reverse variance")
    _check_choice(decoder, DECODERS, "decoder")
    if variance == "learned_range" and decoder_variance is not None:
        raise ValueError("decoder_variance does not apply to variance='learned_range' (the "
                         "decoder's variance is learned too); leave it None.")
    if decoder_variance is None:
        decoder_variance = "posterior" if decoder == "discretized" else "marginal"
    _check_choice(decoder_variance, DECODER_VARIANCES, "decoder variance")
    return num_steps, decoder_variance


def _decoder_logvar(
    schedule: Schedule, num_steps: int, decoder_variance: str, v: Array | None = None
) -> Array:
    lam = schedule(jnp.asarray([1.0, 2.0], jnp.float32) / num_steps)  # timesteps 0 and 1
    log_beta_tilde_1 = jax.nn.log_sigmoid(-lam[0]) + _log1mexp(lam[1] - lam[0])
    if v is not None:  # learned range between beta_0 = sigma_0^2 and beta_tilde_1 (iDDPM)
        return learned_range_logvar(v, jax.nn.log_sigmoid(-lam[0]), log_beta_tilde_1)
    if decoder_variance == "marginal":
        return -lam[0]  # sigma_0^2 / alpha_0^2
    return log_beta_tilde_1


def _check_v(v: ArrayLike | None, x0: Array, variance: str) -> Array | None:
    if variance != "learned_range":
        if v is not None:
            raise ValueError(f"v (a learned variance) given, but variance={variance!r}; use "
                             "variance='learned_range'.")
        return None
    if v is None:
        raise ValueError("variance='learned_range' needs the model's v, shaped like x0.")
    v = _f32(v)
    _check_like(v, x0, "v")
    return v


def discrete_vlb_terms(
    schedule: Schedule,
    num_steps: int,
    x0: ArrayLike,
    x0_hat: ArrayLike,
    timestep: ArrayLike,
    *,
    variance: str = "small",
    decoder: str = "discretized",
    decoder_variance: str | None = None,
    v: ArrayLike | None = None,
) -> Array:
    """The VLB term of each example's timestep, in nats ``(B,)``, given the model's ``x0_hat``.

    ``timestep = 0``: the decoder NLL ``-log p(x0 | x_0)``; ``timestep = i >= 1``:
    ``KL(q(x_{i-1} | x_i, x0) || p(x_{i-1} | x_i))``. Only ``x0 - x0_hat`` matters: the
    ``x_t`` parts of the two means are equal. With ``variance="learned_range"``, ``v`` (like
    x0) is the model's variance output (module docstring). See the module docstring for the math.
    """
    num_steps, decoder_variance = _check_vlb_options(num_steps, variance, decoder, decoder_variance)
    x0, x0_hat = _f32(x0), _f32(x0_hat)
    batch = _check_batch(x0)
    _check_like(x0_hat, x0, "x0_hat")
    v = _check_v(v, x0, variance)
    timestep = jnp.asarray(timestep)
    _check_per_example(timestep, batch, "timestep")
    kl = _reverse_kl(schedule, num_steps, x0, x0_hat, timestep, variance, v)
    recon = _decoder_nll(schedule, num_steps, x0, x0_hat, decoder, decoder_variance, v)
    return jnp.where(timestep == 0, recon, kl)


def _reverse_kl(
    schedule: Schedule,
    num_steps: int,
    x0: Array,
    x0_hat: Array,
    timestep: Array,
    variance: str,
    v: Array | None = None,
) -> Array:
    """``KL(q(x_{i-1} | x_i, x0) || p(x_{i-1} | x_i))`` per example, for timesteps i >= 1."""
    i = timestep.astype(jnp.float32)
    lam_t = schedule((i + 1.0) / num_steps)
    lam_s = schedule(i / num_steps)  # the step before (arbitrary at i = 0, where it is unused)
    lam_t, lam_s = process._expand(lam_t, x0.ndim), process._expand(lam_s, x0.ndim)
    log_beta, log_beta_tilde = step_log_variances(lam_t, lam_s)
    log_coef_sq = jax.nn.log_sigmoid(lam_s) + 2.0 * _log1mexp(lam_t - lam_s)  # (alpha_s(1-e^d))^2
    if variance == "learned_range":
        logvar_p = learned_range_logvar(v, log_beta, log_beta_tilde)
    else:
        logvar_p = log_beta_tilde if variance == "small" else log_beta
    u = log_beta_tilde - logvar_p
    sq = jnp.square(x0 - x0_hat)
    return 0.5 * _sum_event(jnp.expm1(u) - u + jnp.exp(log_coef_sq - logvar_p) * sq)


def _decoder_nll(
    schedule: Schedule,
    num_steps: int,
    x0: Array,
    x0_hat: Array,
    decoder: str,
    decoder_variance: str,
    v: Array | None = None,
) -> Array:
    """``-log p(x0 | x_0)`` per example, with the model's ``x0_hat`` (and ``v``) at timestep 0."""
    logvar_d = _decoder_logvar(schedule, num_steps, decoder_variance, v)
    if decoder == "discretized":
        ll = discretized_gaussian_log_likelihood(x0, x0_hat, 0.5 * logvar_d)
    else:
        ll = gaussian_log_likelihood(x0, x0_hat, logvar_d)
    return -_sum_event(ll)


def _model_at(
    apply: Apply,
    params: Params,
    schedule: Schedule,
    x0: Array,
    t: Array,
    eps: Array,
    labels: Array | None,
    parameterization: str,
    noise_input: NoiseInput,
    clip_x0: bool,
    apply_kwargs: dict[str, Any],
    learned: bool = False,
    stop_mean: bool = False,
) -> tuple[Array, Array | None, Array]:
    """``(x0_hat, v, pred)`` of the network at ``x_t = alpha x0 + sigma eps``; v is None unless
    ``learned``. ``stop_mean``: x0_hat gets no gradient (iDDPM's frozen mean for L_vlb); the
    returned raw ``pred`` keeps its gradient."""
    c = coefficients(schedule, t, x0.ndim)
    x_t = c.alpha * x0 + c.sigma * eps
    t_input = noise_input(t, schedule(t))
    if learned:
        pred, v = call_network_with_variance(apply, params, x_t, t_input, labels, **apply_kwargs)
    else:
        pred, v = call_network(apply, params, x_t, t_input, labels, **apply_kwargs), None
    mean_pred = jax.lax.stop_gradient(pred) if stop_mean else pred
    x0_hat = to_x0_eps(mean_pred, x_t, c, parameterization)[0]
    return (jnp.clip(x0_hat, -1.0, 1.0) if clip_x0 else x0_hat), v, pred


def _draw_timestep_eps(
    key: Array | None,
    x0: Array,
    num_steps: int,
    timestep: ArrayLike | None,
    eps: ArrayLike | None,
    low_discrepancy: bool,
) -> tuple[Array, Array]:
    batch = _check_batch(x0)
    if timestep is None or eps is None:
        key_i, key_e = jax.random.split(_need_key(key, "timestep and eps"))
    if timestep is None:
        timestep = process.sample_timestep(key_i, batch, num_steps, low_discrepancy=low_discrepancy)
    if eps is None:
        eps = jax.random.normal(key_e, x0.shape, jnp.float32)
    timestep, eps = jnp.asarray(timestep), _f32(eps)
    _check_per_example(timestep, batch, "timestep")
    _check_like(eps, x0, "eps")
    return timestep, eps


def discrete_vlb_loss(
    apply: Apply,
    schedule: Schedule,
    num_steps: int,
    *,
    parameterization: str = "eps",
    variance: str = "small",
    decoder: str = "discretized",
    decoder_variance: str | None = None,
    noise_input: NoiseInput | None = None,
    clip_x0: bool = False,
    low_discrepancy: bool = False,
) -> LossFn:
    """The unbiased single-timestep estimator of the discrete VLB, for training:
    ``T L_i + L_prior`` with ``i ~ U{0, ..., T-1}``, whose mean over i is :func:`discrete_vlb`.

    Args:
      apply: the network, ``apply(params, x_t, t_input, labels=None, **kwargs)``.
      schedule: a log-SNR schedule; timestep i is at ``t_i = (i + 1) / T``.
      num_steps: T >= 2.
      parameterization: what the network predicts (converted to ``x0_hat``).
      variance: the reverse variance: fixed ``"small"`` (``beta_tilde``) or ``"large"``
        (beta), or ``"learned_range"`` (the network returns 2C channels, prediction and v;
        module docstring). This is iDDPM's L_vlb objective; :func:`hybrid_loss` is L_hybrid.
      decoder: ``"discretized"`` (8-bit data in [-1, 1]) or ``"gaussian"`` (continuous data).
      decoder_variance: ``"posterior"`` or ``"marginal"`` (module docstring); default by decoder.
      noise_input: ``(t, logsnr) -> t_input``; default ``1000 t``.
      clip_x0: clip ``x0_hat`` to [-1, 1] (iDDPM evaluates its bits/dim with clipping).
      low_discrepancy: stratified timesteps across the batch.

    Returns:
      ``loss(params, x0, key, labels=None, *, timestep=None, eps=None, **apply_kwargs) -> (B,)``
      in nats; ``timestep`` (int ``(B,)``) and ``eps`` replace the draws from ``key``.
    """
    num_steps, decoder_variance = _check_vlb_options(num_steps, variance, decoder, decoder_variance)
    check_parameterization(parameterization)
    noise_input = process.time_input() if noise_input is None else noise_input
    learned = variance == "learned_range"

    def loss(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        timestep: ArrayLike | None = None,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array:
        x0 = _f32(x0)
        timestep, eps = _draw_timestep_eps(key, x0, num_steps, timestep, eps, low_discrepancy)
        t = schedules.timestep_to_t(timestep, num_steps)
        x0_hat, v, _ = _model_at(apply, params, schedule, x0, t, eps, labels, parameterization,
                                 noise_input, clip_x0, apply_kwargs, learned)
        kl = _reverse_kl(schedule, num_steps, x0, x0_hat, timestep, variance, v)
        recon = _decoder_nll(schedule, num_steps, x0, x0_hat, decoder, decoder_variance, v)
        term = jnp.where(timestep == 0, recon, kl)
        return num_steps * term + prior_kl(schedule, x0)

    return loss


def hybrid_loss(
    apply: Apply,
    schedule: Schedule,
    num_steps: int,
    *,
    parameterization: str = "eps",
    target: str = "eps",
    vlb_weight: float = 0.001,
    decoder: str = "discretized",
    noise_input: NoiseInput | None = None,
    low_discrepancy: bool = False,
    return_terms: bool = False,
) -> LossFn:
    """Improved DDPM's hybrid objective ``L_simple + lambda L_vlb`` for a learned-range
    variance (Nichol & Dhariwal 2021, sec. 3.1, lambda = 0.001), per example.

    The network returns 2C channels: its prediction (in ``parameterization``) and ``v``
    (:func:`gen.diffusion.process.split_variance`), the reverse variance being
    ``exp(f log beta + (1 - f) log beta_tilde)``, ``f = (v + 1) / 2`` (eq. 15). At one
    timestep ``i ~ U{0, ..., T-1}`` with ``x_t = alpha x0 + sigma eps``:

    - ``L_simple = mean_D (target - target_hat)^2`` (:func:`gen.diffusion.process.denoising_loss`
      with ``reduce="mean"``);
    - ``L_vlb ~ T L_i / (D log 2)``, the unbiased estimate of the VLB in bits per dimension,
      ``L_i`` the KL term for ``i >= 1`` and the decoder NLL at ``i = 0``
      (:func:`discrete_vlb_terms`), computed with a **stop-gradient on the mean**, so that
      L_vlb trains only v and L_simple only the mean.

    With T = 1000 this is improved-diffusion's ``mse + vb`` (``RESCALED_MSE``, ``vb *= T /
    1000``, its ``_vb_terms_bpd`` being ``L_i / (D log 2)``). No prior term (it has no
    gradient).

    Args:
      apply: the network, ``apply(params, x_t, t_input, labels=None, **kwargs) -> (..., 2C)``.
      schedule: a log-SNR schedule; timestep i is at ``t_i = (i + 1) / T``.
      num_steps: T >= 2.
      parameterization: what the mean part predicts: eps, x0, v, score or velocity.
      target: the space of L_simple: eps, x0 or v.
      vlb_weight: lambda >= 0.
      decoder: ``"discretized"`` (8-bit data in [-1, 1]) or ``"gaussian"`` (continuous data).
      noise_input: ``(t, logsnr) -> t_input``; default ``1000 t``.
      low_discrepancy: stratified timesteps across the batch.
      return_terms: return a dict of ``(B,)`` arrays ``total``, ``simple`` and ``vlb`` (the
        unweighted L_vlb estimate, bits/dim).

    Returns:
      ``loss(params, x0, key, labels=None, *, timestep=None, eps=None, **apply_kwargs) -> (B,)``;
      ``timestep`` (int ``(B,)``) and ``eps`` replace the draws from ``key``.
    """
    num_steps, _ = _check_vlb_options(num_steps, "learned_range", decoder, None)
    check_parameterization(parameterization)
    _check_choice(target, process.LOSS_TARGETS, "loss target")
    if not vlb_weight >= 0:
        raise ValueError(f"vlb_weight must be >= 0, got {vlb_weight}.")
    noise_input = process.time_input() if noise_input is None else noise_input

    def loss(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        timestep: ArrayLike | None = None,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array | dict[str, Array]:
        x0 = _f32(x0)
        timestep, eps = _draw_timestep_eps(key, x0, num_steps, timestep, eps, low_discrepancy)
        t = schedules.timestep_to_t(timestep, num_steps)
        x0_hat, v, pred = _model_at(apply, params, schedule, x0, t, eps, labels,
                                    parameterization, noise_input, False, apply_kwargs,
                                    learned=True, stop_mean=True)
        c = coefficients(schedule, t, x0.ndim)
        x_t = c.alpha * x0 + c.sigma * eps
        pred_target = convert(pred, x_t, c, parameterization, target)
        simple = _reduce(jnp.square(from_x0_eps(x0, eps, c, target) - pred_target), "mean")
        kl = _reverse_kl(schedule, num_steps, x0, x0_hat, timestep, "learned_range", v)
        recon = _decoder_nll(schedule, num_steps, x0, x0_hat, decoder, "posterior", v)
        dim = math.prod(x0.shape[1:])
        vlb = num_steps * jnp.where(timestep == 0, recon, kl) / (dim * math.log(2.0))
        total = simple + vlb_weight * vlb
        if return_terms:
            return {"total": total, "simple": simple, "vlb": vlb}
        return total

    return loss


def discrete_vlb(
    apply: Apply,
    schedule: Schedule,
    num_steps: int,
    *,
    parameterization: str = "eps",
    variance: str = "small",
    decoder: str = "discretized",
    decoder_variance: str | None = None,
    noise_input: NoiseInput | None = None,
    clip_x0: bool = False,
    return_terms: bool = False,
) -> Callable[..., Array | dict[str, Array]]:
    """The full discrete VLB, summed over all T timesteps (one ``lax.scan``): the number behind
    test bits/dim (Ho et al. 2020, Table 2; iDDPM's ``calc_bpd_loop``). Options as in
    :func:`discrete_vlb_loss` (``variance="learned_range"`` for a 2C-channel network).

    Returns ``nll(params, x0, key, labels=None, *, eps=None, **apply_kwargs)``: nats per
    example ``(B,)``, or with ``return_terms=True`` a dict of ``(B,)`` arrays ``total``,
    ``prior``, ``reconstruction`` (``L_0``) and ``diffusion`` (the sum of the KL terms).
    Timestep i draws its noise from ``jax.random.fold_in(key, i)``; ``eps`` of shape
    ``(T, *x0.shape)`` replaces those draws.
    """
    num_steps, decoder_variance = _check_vlb_options(num_steps, variance, decoder, decoder_variance)
    check_parameterization(parameterization)
    noise_input = process.time_input() if noise_input is None else noise_input
    learned = variance == "learned_range"

    def nll(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array | dict[str, Array]:
        x0 = _f32(x0)
        batch = _check_batch(x0)
        if eps is None:
            key = _need_key(key, "eps")
        else:
            eps = _f32(eps)
            if eps.shape != (num_steps, *x0.shape):
                raise ValueError(
                    f"eps must have shape {(num_steps, *x0.shape)} (T, *x0.shape), got {eps.shape}."
                )

        def noise(i: Array, eps_i: Array | None) -> Array:
            if eps_i is None:
                return jax.random.normal(jax.random.fold_in(key, i), x0.shape, jnp.float32)
            return eps_i

        def model(i: Array, eps_i: Array) -> tuple[Array, Array, Array | None]:
            timestep = jnp.full((batch,), i, jnp.int32)
            t = schedules.timestep_to_t(timestep, num_steps)
            x0_hat, v, _ = _model_at(apply, params, schedule, x0, t, eps_i, labels,
                                     parameterization, noise_input, clip_x0, apply_kwargs,
                                     learned)
            return timestep, x0_hat, v

        def body(diffusion: Array, xs: Any) -> tuple[Array, None]:
            i, eps_i = xs
            timestep, x0_hat_i, v_i = model(i, noise(i, eps_i))
            kl = _reverse_kl(schedule, num_steps, x0, x0_hat_i, timestep, variance, v_i)
            return diffusion + kl, None

        # L_0 at timestep 0, then the KL terms of timesteps 1..T-1 in one scan.
        _, x0_hat_0, v_0 = model(jnp.int32(0), noise(jnp.int32(0), None if eps is None else eps[0]))
        recon = _decoder_nll(schedule, num_steps, x0, x0_hat_0, decoder, decoder_variance, v_0)
        steps = jnp.arange(1, num_steps, dtype=jnp.int32)
        diffusion, _ = jax.lax.scan(body, jnp.zeros((batch,), jnp.float32),
                                    (steps, None if eps is None else eps[1:]))
        prior = prior_kl(schedule, x0)
        total = prior + recon + diffusion
        if return_terms:
            return {"total": total, "prior": prior, "reconstruction": recon, "diffusion": diffusion}
        return total

    return nll


# ----------------------------------------------------------------------------------------------
# VDM continuous-time ELBO
# ----------------------------------------------------------------------------------------------


def vdm_loss(
    apply: Apply,
    schedule: Schedule | LearnedSchedule,
    *,
    parameterization: str = "eps",
    decoder: str = "gaussian",
    num_steps: int | None = None,
    noise_input: NoiseInput | None = None,
    low_discrepancy: bool = True,
    return_terms: bool = False,
) -> LossFn:
    """VDM's ELBO (Kingma et al. 2021), nats per example: prior + reconstruction + diffusion.

    Args:
      apply: the network, ``apply(params, z_t, t_input, labels=None, **kwargs)``; its
        prediction is converted to eps.
      schedule: a fixed log-SNR schedule, or a ``LearnedSchedule`` (then the loss takes
        ``schedule_params`` and is differentiable in them).
      parameterization: what the network predicts.
      decoder: ``"gaussian"`` (continuous data) or ``"discretized"`` (8-bit data at
        ``2k/255 - 1``, VDM's decoder).
      num_steps: None for the continuous-time loss ``L_inf``; T for VDM's discrete-time loss
        ``L_T`` on ``t = (i + 1) / T``.
      noise_input: ``(t, logsnr) -> t_input``. Default: VDM's
        (:func:`gen.diffusion.process.vdm_noise_input`), the log-SNR rescaled to [0, 1000]
        between the schedule's own ends, ``1000 (lambda(0) - lambda) / (lambda(0) -
        lambda(1))``, a function of lambda only (so L_diffusion does not depend on the shape of
        the schedule between fixed ends).
      low_discrepancy: VDM's stratified ("antithetic") time sampling across the batch.
      return_terms: return a dict of ``(B,)`` arrays ``total``, ``prior``,
        ``reconstruction`` and ``diffusion`` instead of the total.

    Returns:
      ``loss(params, x0, key, labels=None, *, schedule_params=None, t=None, eps=None,
      **apply_kwargs) -> (B,)``; ``t`` and ``eps`` replace the draws from ``key`` (which the
      discretized decoder still needs).
    """
    check_parameterization(parameterization)
    _check_choice(decoder, DECODERS, "decoder")
    if num_steps is not None:
        num_steps = schedules._check_steps(num_steps)
    learned = isinstance(schedule, LearnedSchedule)

    def loss(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        schedule_params: Params | None = None,
        t: ArrayLike | None = None,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array | dict[str, Array]:
        if learned:
            if schedule_params is None:
                raise ValueError("a learned schedule needs schedule_params.")
            sched = functools.partial(schedule.apply, schedule_params)
        else:
            if schedule_params is not None:
                raise ValueError("schedule_params given, but the schedule is not learned.")
            sched = schedule
        x0 = _f32(x0)
        batch = _check_batch(x0)
        need_key = t is None or eps is None or decoder == "discretized"
        if need_key:
            key_t, key_e, key_0 = jax.random.split(_need_key(key, "t, eps and decoder noise"), 3)
        if t is None:
            t = process.sample_time(key_t, batch, num_steps=num_steps,
                                    low_discrepancy=low_discrepancy)
        if eps is None:
            eps = jax.random.normal(key_e, x0.shape, jnp.float32)
        t, eps = _f32(t), _f32(eps)
        _check_per_example(t, batch, "t")
        _check_like(eps, x0, "eps")

        ends = sched(jnp.asarray([0.0, 1.0], jnp.float32))
        lam0, lam1 = ends[0], ends[1]
        lam_t, dlam_t = schedules.logsnr_and_derivative(sched, t)
        c = coefficients(sched, t, x0.ndim)
        z_t = c.alpha * x0 + c.sigma * eps
        if noise_input is None:  # vdm_noise_input(sched), with the ends already at hand
            t_input = 1000.0 * (lam0 - lam_t) / (lam0 - lam1)
        else:
            t_input = noise_input(t, lam_t)
        pred = call_network(apply, params, z_t, t_input, labels, **apply_kwargs)
        eps_hat = convert(pred, z_t, c, parameterization, "eps")
        mse = _sum_event(jnp.square(eps - eps_hat))
        if num_steps is None:
            diffusion = 0.5 * (-dlam_t) * mse
        else:
            lam_s = sched(jnp.maximum(t - 1.0 / num_steps, 0.0))
            diffusion = 0.5 * num_steps * jnp.expm1(lam_s - lam_t) * mse

        prior = _prior_kl_from_logsnr(x0, lam1)
        if decoder == "gaussian":
            dim = math.prod(x0.shape[1:])
            recon = jnp.full((batch,), 0.5 * dim, jnp.float32) * (1.0 + _LOG_2PI - lam0)
        else:
            eps0 = jax.random.normal(key_0, x0.shape, jnp.float32)
            z0_rescaled = x0 + jnp.exp(-0.5 * lam0) * eps0  # z_0 / alpha_0
            recon = -_sum_event(vdm_discretized_log_likelihood(x0, z0_rescaled, lam0))
        total = prior + recon + diffusion
        if return_terms:
            return {"total": total, "prior": prior, "reconstruction": recon, "diffusion": diffusion}
        return total

    return loss



def vdm_value_and_grads(
    loss_fn: LossFn,
    params: Params,
    schedule_params: Params,
    x0: ArrayLike,
    key: Array | None,
    labels: Array | None = None,
    **kwargs: Any,
) -> tuple[Array, tuple[Params, Params]]:
    """The mean ELBO, its gradient for the network, and VDM's variance-minimizing gradient for a
    learned schedule (Kingma et al. 2021, "variance minimization" of the schedule).

    With the ends of the schedule fixed (as :func:`gen.diffusion.schedules.learned` fixes
    them), the expected ELBO does not depend on the schedule's interior, so its gradient there
    is pure noise. VDM instead trains the schedule to lower the variance of the Monte Carlo
    estimate: as ``E[L]`` is fixed, ``grad Var[L] = grad E[L^2] = E[2 L grad L]``. One forward
    pass and two vector-Jacobian products with cotangents ``1/B`` and ``2 L / B``.

    Args:
      loss_fn: a :func:`vdm_loss` built with a ``LearnedSchedule`` (totals, not terms).
      params, schedule_params: the network's and the schedule's params.
      x0, key, labels, kwargs: as for ``loss_fn``.

    Returns:
      ``(mean_loss, (grad_params, grad_schedule_params))``, the schedule's being the gradient
      of ``mean(L^2)``.
    """

    def per_example(p: Params, sp: Params) -> Array:
        out = loss_fn(p, x0, key, labels, schedule_params=sp, **kwargs)
        return out["total"] if isinstance(out, dict) else out

    values, vjp = jax.vjp(per_example, params, schedule_params)
    batch = values.shape[0]
    grad_params = vjp(jnp.full_like(values, 1.0 / batch))[0]
    grad_schedule = vjp(2.0 * values / batch)[1]
    return jnp.mean(values), (grad_params, grad_schedule)
