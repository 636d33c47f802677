"""The forward process ``q(x_t | x_0)``, what the network is told about the noise level, and the
denoising losses: the simple eps / x0 / v losses with min-SNR-gamma weighting, and EDM.

The likelihood losses (the discrete VLB of DDPM and the VDM continuous-time ELBO) live in
:mod:`gen.diffusion.losses`.

Conventions
-----------
- **Shapes.** Data ``x0`` is a batch ``(B, ...)``; time ``t`` is per example, ``(B,)``. Every
  loss returns per-example values of shape ``(B,)``; the caller averages (or weighs) them.
- **Forward process.** A schedule maps ``t in [0, 1]`` to the log-SNR ``lambda(t)``
  (:mod:`gen.diffusion.schedules`); ``x_t = alpha x0 + sigma eps`` with ``alpha^2 =
  sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)`` and ``eps ~ N(0, I)``. t outside [0, 1] is
  clipped by the schedule (so it behaves as the nearest end).
- **Time sampling.** Continuous ``t ~ U(0, 1)``, or with ``num_steps=T`` diffusers' integer
  timesteps ``i ~ U{0, ..., T-1}`` at ``t_i = (i + 1) / T``
  (:func:`gen.diffusion.schedules.timestep_to_t`). ``low_discrepancy=True`` draws VDM's
  stratified times ``t_b = (u + b / B) mod 1`` (Kingma et al. 2021, VDM's low-discrepancy sampler).
- **Networks** are plain functions ``apply(params, x_t, t_input, labels=None, **kwargs) ->
  prediction``; the prediction is in a declared parameterization (``eps``, ``x0``, ``v``,
  ``score`` or ``velocity``; :mod:`gen.diffusion.parameterization`). ``labels`` is passed only
  when it is not None, and extra keyword arguments of a loss call (e.g. ``rngs`` for dropout)
  are passed on to ``apply``.
- **t_input** is ``noise_input(t, logsnr)``, a per-example float ``(B,)``; each loss builder
  takes the function. The default for the denoising losses and the discrete VLB is
  :func:`time_input` (``1000 t``, DDPM's scale for a sinusoidal embedding; with ``T = 1000``
  discrete steps this is ``i + 1``, so use :func:`timestep_input` to feed diffusers' ``i``);
  VDM's is the log-SNR rescaled to [0, 1000] between the schedule's ends
  (:func:`vdm_noise_input`); EDM's is ``c_noise = log(sigma) / 4`` (:func:`edm_noise_input`).
  A sampler must feed the network the same ``t_input`` it was trained with:
  :func:`sampling_denoiser` turns ``apply`` into the samplers' ``denoiser(x_t, t)`` that way.
- **Precision.** Schedules, coefficients and losses are float32 (the data and the network
  output are cast to float32 before the loss).
- **Reduction.** The simple and EDM losses average over the non-batch axes (``reduce="mean"``,
  improved-diffusion's ``mean_flat``) or sum them (``reduce="sum"``); likelihoods sum (nats).
- **EMA.** The generic loop keeps an exponential moving average of the params
  (``config.ema_decay``); samplers and evaluation should use it
  (``TrainState.eval_params()``), as DDPM, iDDPM, VDM and EDM all do.

EDM and the VP process
----------------------
EDM (Karras et al. 2022) writes the noisy input in the variance-exploding form ``x = y + n``,
``n ~ N(0, sigma_edm^2 I)``. It is the VP ``x_t`` of our coefficients divided by alpha::

    x_edm = x_t / alpha,        sigma_edm = sigma / alpha = exp(-lambda / 2).

:func:`edm_denoiser` returns ``D(x; sigma_edm)``, an x0-predictor on ``x_edm``;
:func:`edm_vp_denoiser` wraps it as a network of the usual contract on the VP ``x_t`` (its
``t_input`` is the log-SNR, its parameterization ``x0``), so the samplers can use it directly.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.diffusion import process, schedules
    >>> apply = lambda params, x_t, t_input: params * x_t          # a toy eps-network
    >>> loss_fn = process.denoising_loss(apply, schedules.cosine(), weighting="min_snr")
    >>> loss_fn(0.5, jnp.ones((4, 2)), jax.random.key(0)).shape
    (4,)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gen.diffusion import schedules
from gen.diffusion.parameterization import (
    Coefficients,
    check_parameterization,
    convert,
    from_x0_eps,
    vp_coefficients,
)
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Params = Any
Apply = Callable[..., Array]
NoiseInput = Callable[[Array, Array], Array]  # (t, logsnr) -> t_input, all (B,)
LossFn = Callable[..., Array]

__all__ = [
    "EDMPreconditioning",
    "call_network",
    "call_network_with_variance",
    "coefficients",
    "denoising_loss",
    "edm_denoiser",
    "edm_loss",
    "edm_noise_input",
    "edm_preconditioning",
    "edm_vp_denoiser",
    "edm_weight",
    "learned_range_logvar",
    "logsnr_input",
    "min_snr_weight",
    "q_sample",
    "rescaled_logsnr_input",
    "sample_edm_sigma",
    "sample_time",
    "sample_timestep",
    "sampling_denoiser",
    "split_variance",
    "step_log_variances",
    "time_input",
    "timestep_input",
    "vdm_noise_input",
]

LOSS_TARGETS = ("eps", "x0", "v")
REDUCTIONS = ("mean", "sum")


# ----------------------------------------------------------------------------------------------
# Checks and small helpers
# ----------------------------------------------------------------------------------------------


def _f32(x: ArrayLike) -> Array:
    return jnp.asarray(x, jnp.float32)


def _check_batch(x0: Array, name: str = "x0") -> int:
    if x0.ndim < 1:
        raise ValueError(f"{name} must have a leading batch axis (B, ...), got shape {x0.shape}.")
    return x0.shape[0]


def _check_per_example(v: Array, batch: int, name: str) -> None:
    if v.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) (one per example), got {v.shape}.")


def _check_like(v: Array, x0: Array, name: str) -> None:
    if v.shape != x0.shape:
        raise ValueError(f"{name} must have the shape of x0 {x0.shape}, got {v.shape}.")


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}.")
    return value


def _check_reduce(reduce: str) -> str:
    return _check_choice(reduce, REDUCTIONS, "reduce")


def _expand(v: Array, ndim: int) -> Array:
    """``(B,) -> (B, 1, ..., 1)`` with ``ndim`` axes in all."""
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def _reduce(sq: Array, reduce: str) -> Array:
    axes = tuple(range(1, sq.ndim))
    return jnp.mean(sq, axis=axes) if reduce == "mean" else jnp.sum(sq, axis=axes)


def _need_key(key: Array | None, what: str) -> Array:
    if key is None:
        raise ValueError(f"a PRNG key is needed to sample {what}; pass key or pass {what}.")
    return key


def call_network(
    apply: Apply, params: Params, x: Array, t_input: Array, labels: Array | None, **kwargs: Any
) -> Array:
    """``apply(params, x, t_input[, labels], **kwargs)`` as float32; ``labels`` only if given."""
    if labels is None:
        out = apply(params, x, t_input, **kwargs)
    else:
        out = apply(params, x, t_input, labels, **kwargs)
    out = jnp.asarray(out)
    if out.shape != x.shape:
        raise ValueError(
            f"the network must return a prediction of the input's shape {x.shape}, got {out.shape}."
        )
    return out.astype(jnp.float32)


def split_variance(out: ArrayLike, x: ArrayLike) -> tuple[Array, Array]:
    """Split a learned-variance output ``(..., 2C)`` for an input ``x`` of shape ``(..., C)``
    on the last (channel) axis: ``(prediction, v)``, each shaped like x. The first C channels
    are the prediction (eps, x0, ...), the last C the variance interpolation ``v in [-1, 1]``
    (:func:`learned_range_logvar`); improved-diffusion's and diffusers' order, channels last.
    """
    out, x = jnp.asarray(out), jnp.asarray(x)
    want = (*x.shape[:-1], 2 * x.shape[-1]) if x.ndim else None
    if out.shape != want:
        raise ValueError(
            f"a learned-variance network must return 2C channels, shape {want} for an input "
            f"of shape {x.shape}, got {out.shape}."
        )
    c = x.shape[-1]
    return out[..., :c], out[..., c:]


def step_log_variances(logsnr_t: ArrayLike, logsnr_s: ArrayLike) -> tuple[Array, Array]:
    """``(log beta, log beta_tilde)`` of the reverse step from t to an earlier s (lambda_s >
    lambda_t), in log-SNR form with ``d = lambda_t - lambda_s < 0``:

    ``beta = 1 - alpha_t^2 / alpha_s^2 = sigma_t^2 (1 - e^d)`` and the posterior variance
    ``beta_tilde = beta sigma_s^2 / sigma_t^2 = sigma_s^2 (1 - e^d)``. At ``lambda_s = +inf``
    (the clean data) ``beta = sigma_t^2`` and ``beta_tilde = 0`` (log ``-inf``).
    """
    lam_t, lam_s = _f32(logsnr_t), _f32(logsnr_s)
    l1m = _log1mexp(lam_t - lam_s)  # log(1 - e^d)
    return jax.nn.log_sigmoid(-lam_t) + l1m, jax.nn.log_sigmoid(-lam_s) + l1m


def learned_range_logvar(v: ArrayLike, log_beta: ArrayLike, log_beta_tilde: ArrayLike) -> Array:
    """Improved DDPM's learned-range variance (Nichol & Dhariwal 2021, eq. 15), as a log:

    ``log Sigma_theta = f log beta + (1 - f) log beta_tilde``, ``f = (v + 1) / 2``,

    so the model's ``v in [-1, 1]`` moves the variance from ``beta_tilde`` (v = -1) to
    ``beta`` (v = 1); v is not clipped (as in improved-diffusion and diffusers).
    """
    frac = 0.5 * (_f32(v) + 1.0)
    return frac * _f32(log_beta) + (1.0 - frac) * _f32(log_beta_tilde)


def _log1mexp(x: Array) -> Array:
    """``log(1 - exp(x))`` for ``x < 0`` (Maechler 2012), NaN-free in values and gradients;
    x is clamped below 0 (``x = 0`` would be ``-inf``)."""
    x = jnp.minimum(x, -jnp.finfo(x.dtype).tiny)
    near = x > -math.log(2.0)
    a = jnp.log(-jnp.expm1(jnp.where(near, x, -1.0)))
    b = jnp.log1p(-jnp.exp(jnp.where(near, -1.0, x)))
    return jnp.where(near, a, b)


def call_network_with_variance(
    apply: Apply, params: Params, x: Array, t_input: Array, labels: Array | None, **kwargs: Any
) -> tuple[Array, Array]:
    """:func:`call_network` for a learned-variance network (2C output channels): ``(prediction,
    v)``, float32, each shaped like x (:func:`split_variance`)."""
    if labels is None:
        out = apply(params, x, t_input, **kwargs)
    else:
        out = apply(params, x, t_input, labels, **kwargs)
    pred, v = split_variance(out, x)
    return pred.astype(jnp.float32), v.astype(jnp.float32)


def sampling_denoiser(
    apply: Apply,
    params: Params,
    schedule: Schedule,
    noise_input: NoiseInput | None = None,
    *,
    conditional: bool = False,
    learned_variance: bool = False,
    **apply_kwargs: Any,
) -> Callable[..., Array]:
    """A trained network as the samplers' denoiser (:mod:`gen.diffusion.samplers`):
    ``(x_t, t) -> prediction``, or ``(x_t, t, labels) -> prediction`` with ``conditional``
    (wrap it with ``samplers.class_conditional``). The network gets the ``t_input`` it was
    trained with, ``noise_input(t, schedule(t))``; default :func:`time_input` (pass
    :func:`vdm_noise_input` of the schedule for a :func:`gen.diffusion.losses.vdm_loss` model).
    Pass the EMA params (``TrainState.eval_params()``).

    ``learned_variance``: the network returns 2C channels (prediction and v,
    :func:`split_variance`), and so does the denoiser, for ``samplers.ddpm(...,
    variance="learned_range")``; wrap it with ``samplers.mean_only`` for the other samplers.
    """
    noise_input = time_input() if noise_input is None else noise_input

    def t_input(t: Array) -> Array:
        t = _f32(t)
        return noise_input(t, schedule(t))

    def call(x_t: Array, t: Array, labels: Array | None) -> Array:
        if learned_variance:
            pred, v = call_network_with_variance(apply, params, x_t, t_input(t), labels,
                                                 **apply_kwargs)
            return jnp.concatenate([pred, v], axis=-1)
        return call_network(apply, params, x_t, t_input(t), labels, **apply_kwargs)

    if conditional:

        def denoise_labels(x_t: Array, t: Array, labels: Array) -> Array:
            return call(x_t, t, labels)

        return denoise_labels

    def denoise(x_t: Array, t: Array) -> Array:
        return call(x_t, t, None)

    return denoise


# ----------------------------------------------------------------------------------------------
# Forward process
# ----------------------------------------------------------------------------------------------


def coefficients(schedule: Schedule, t: ArrayLike, ndim: int) -> Coefficients:
    """``Coefficients(alpha, sigma, d alpha/dt, d sigma/dt)`` of ``schedule`` at per-example t
    ``(B,)``, each shaped ``(B, 1, ..., 1)`` with ``ndim`` axes to broadcast against the data.
    Derivatives come from ``jax.jvp`` (:func:`gen.diffusion.schedules.alpha_sigma_and_derivatives`).
    """
    t = _f32(t)
    if t.ndim != 1:
        raise ValueError(f"t must be per example, shape (B,), got {t.shape}.")
    if ndim < 1:
        raise ValueError(f"ndim must be >= 1 (the batch axis), got {ndim}.")
    return Coefficients(*(_expand(c, ndim) for c in vp_coefficients(schedule, t)))


def q_sample(schedule: Schedule, x0: ArrayLike, t: ArrayLike, eps: ArrayLike) -> Array:
    """A draw from ``q(x_t | x_0) = N(alpha(t) x0, sigma(t)^2 I)`` (Ho et al. 2020, eq. 4):
    ``x_t = alpha x0 + sigma eps``, for data ``(B, ...)``, t ``(B,)`` and eps like x0."""
    x0, t, eps = _f32(x0), _f32(t), _f32(eps)
    batch = _check_batch(x0)
    _check_per_example(t, batch, "t")
    _check_like(eps, x0, "eps")
    alpha, sigma = schedules.alpha_sigma(schedule, t)
    return _expand(alpha, x0.ndim) * x0 + _expand(sigma, x0.ndim) * eps


# ----------------------------------------------------------------------------------------------
# What the network is told: t_input = noise_input(t, logsnr)
# ----------------------------------------------------------------------------------------------


def time_input(scale: float = 1000.0) -> NoiseInput:
    """``t_input = scale * t``; DDPM-style networks take ``1000 t`` (``i + 1`` at T = 1000)."""

    def noise_input(t: Array, logsnr: Array) -> Array:
        del logsnr
        return scale * _f32(t)

    return noise_input


def timestep_input(num_steps: int) -> NoiseInput:
    """``t_input = t T - 1``: diffusers' integer timestep ``i`` at ``t_i = (i + 1) / T`` (as a
    float, exact up to rounding), for networks that take diffusers' timesteps."""
    num_steps = schedules._check_steps(num_steps)

    def noise_input(t: Array, logsnr: Array) -> Array:
        del logsnr
        return _f32(t) * num_steps - 1.0

    return noise_input


def logsnr_input() -> NoiseInput:
    """``t_input = lambda``, the log-SNR itself."""

    def noise_input(t: Array, logsnr: Array) -> Array:
        del t
        return _f32(logsnr)

    return noise_input


def rescaled_logsnr_input(
    logsnr_max: float, logsnr_min: float, scale: float = 1000.0
) -> NoiseInput:
    """VDM's input, ``scale (logsnr_max - lambda) / (logsnr_max - logsnr_min)``: 0 at the least
    noise and ``scale`` at the most (VDM's ``ScoreUNet`` maps ``gamma = -lambda`` to [0, 1] and
    its embedding multiplies by 1000). A function of lambda alone, so that the continuous-time
    VDM loss does not depend on the shape of the schedule between its ends."""
    if not logsnr_max > logsnr_min:
        raise ValueError(f"need logsnr_max > logsnr_min, got {logsnr_max}, {logsnr_min}.")
    span = logsnr_max - logsnr_min

    def noise_input(t: Array, logsnr: Array) -> Array:
        del t
        return scale * (logsnr_max - _f32(logsnr)) / span

    return noise_input


def vdm_noise_input(schedule: Schedule, scale: float = 1000.0) -> NoiseInput:
    """VDM's default input for ``schedule``: :func:`rescaled_logsnr_input` between the
    schedule's own ends, ``scale (lambda(0) - lambda) / (lambda(0) - lambda(1))``, with the ends
    evaluated at each call (so a learned schedule's params may be traced)."""

    def noise_input(t: Array, logsnr: Array) -> Array:
        del t
        ends = schedule(jnp.asarray([0.0, 1.0], jnp.float32))
        return scale * (ends[0] - _f32(logsnr)) / (ends[0] - ends[1])

    return noise_input


def edm_noise_input() -> NoiseInput:
    """EDM's ``c_noise = log(sigma_edm) / 4 = -lambda / 8`` (Karras et al. 2022, Table 1)."""

    def noise_input(t: Array, logsnr: Array) -> Array:
        del t
        return -0.125 * _f32(logsnr)

    return noise_input


# ----------------------------------------------------------------------------------------------
# Time sampling
# ----------------------------------------------------------------------------------------------


def sample_timestep(
    key: Array, batch_size: int, num_steps: int, *, low_discrepancy: bool = False
) -> Array:
    """Per-example integer timesteps ``i ~ U{0, ..., T-1}``, int32 ``(B,)``; with
    ``low_discrepancy``, ``i_b = floor(u_b T)`` for VDM's stratified ``u_b`` (:func:`sample_time`).
    """
    batch_size = schedules._check_steps(batch_size, "batch_size")
    num_steps = schedules._check_steps(num_steps)
    if not low_discrepancy:
        return jax.random.randint(key, (batch_size,), 0, num_steps, jnp.int32)
    u = _stratified_uniform(key, batch_size)
    return jnp.clip(jnp.floor(u * num_steps), 0, num_steps - 1).astype(jnp.int32)


def _stratified_uniform(key: Array, batch_size: int) -> Array:
    u0 = jax.random.uniform(key, (), jnp.float32)
    return jnp.mod(u0 + jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)


def sample_time(
    key: Array, batch_size: int, *, num_steps: int | None = None, low_discrepancy: bool = False
) -> Array:
    """Per-example training times ``(B,)``, float32.

    - ``num_steps=None``: ``t ~ U[0, 1)``.
    - ``num_steps=T``: ``t = (i + 1) / T`` with ``i ~ U{0, ..., T-1}`` (diffusers' timesteps,
      :func:`sample_timestep`).
    - ``low_discrepancy=True``: VDM's sampler, ``u_b = (u + b / B) mod 1`` with one ``u ~ U[0,
      1)``: each ``u_b`` is uniform and the batch covers [0, 1) evenly, which lowers the variance
      of the loss. The stratification is over the whole (global) batch.
    """
    if num_steps is not None:
        i = sample_timestep(key, batch_size, num_steps, low_discrepancy=low_discrepancy)
        return schedules.timestep_to_t(i, num_steps)
    batch_size = schedules._check_steps(batch_size, "batch_size")
    if low_discrepancy:
        return _stratified_uniform(key, batch_size)
    return jax.random.uniform(key, (batch_size,), jnp.float32)


# ----------------------------------------------------------------------------------------------
# The simple losses and min-SNR-gamma
# ----------------------------------------------------------------------------------------------


def min_snr_weight(logsnr: ArrayLike, gamma: float = 5.0, target: str = "eps") -> Array:
    """Min-SNR-gamma loss weights (Hang et al. 2023), from the log-SNR.

    Each makes the loss ``min(SNR, gamma) ||x0 - x0_hat||^2``, with ``SNR = exp(lambda)``:

    - ``eps`` target: ``min(SNR, gamma) / SNR`` (``||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2``);
    - ``x0`` target: ``min(SNR, gamma)``;
    - ``v`` target: ``min(SNR, gamma) / (SNR + 1)`` (``||v - v_hat||^2 = (SNR + 1) ||...||^2``).

    Computed in log space, so finite for any lambda, including +-inf.
    """
    _check_choice(target, LOSS_TARGETS, "min-SNR target")
    if not gamma > 0:
        raise ValueError(f"min_snr_weight: need gamma > 0, got {gamma}.")
    lam = _f32(logsnr)
    log_gamma = math.log(gamma)
    if target == "eps":
        return jnp.exp(jnp.minimum(0.0, log_gamma - lam))
    log_min = jnp.minimum(lam, log_gamma)
    if target == "x0":
        return jnp.exp(log_min)
    return jnp.exp(log_min - jax.nn.softplus(lam))


def denoising_loss(
    apply: Apply,
    schedule: Schedule,
    *,
    parameterization: str = "eps",
    target: str = "eps",
    weighting: str | Callable[[Array], Array] | None = None,
    min_snr_gamma: float = 5.0,
    num_steps: int | None = None,
    noise_input: NoiseInput | None = None,
    low_discrepancy: bool = False,
    reduce: str = "mean",
) -> LossFn:
    """The simple denoising losses: ``w(lambda) ||target - target_hat||^2`` per example.

    The network's prediction (in ``parameterization``) is converted exactly into ``target``
    (:func:`gen.diffusion.parameterization.convert`) at the same ``x_t``, so any network can be
    trained with any of the losses; e.g. an x0-network under the eps loss is the x0 loss
    weighted by the SNR. The targets:

    - ``eps``: the "simple" loss ``||eps - eps_hat||^2`` of Ho et al. 2020 (eq. 14);
    - ``x0``: ``||x0 - x0_hat||^2``;
    - ``v``: ``||v - v_hat||^2``, ``v = alpha eps - sigma x0`` (Salimans & Ho 2022).

    Args:
      apply: the network, ``apply(params, x_t, t_input, labels=None, **kwargs)``.
      schedule: a log-SNR schedule.
      parameterization: what the network predicts: eps, x0, v, score or velocity.
      target: the loss space: eps, x0 or v.
      weighting: None (weight 1), ``"min_snr"`` (:func:`min_snr_weight` with ``min_snr_gamma``
        for ``target``), or a function ``logsnr (B,) -> weights (B,)``.
      num_steps: None for continuous t; T for diffusers' discrete timesteps ``t = (i+1)/T``.
      noise_input: ``(t, logsnr) -> t_input``; default :func:`time_input` (``1000 t``).
      low_discrepancy: VDM's stratified time sampling (:func:`sample_time`).
      reduce: ``"mean"`` or ``"sum"`` over the non-batch axes.

    Returns:
      ``loss(params, x0, key, labels=None, *, t=None, eps=None, **apply_kwargs) -> (B,)``.
      ``t`` and ``eps``, when given, replace the draws from ``key`` (which may then be None).
    """
    check_parameterization(parameterization)
    _check_choice(target, LOSS_TARGETS, "loss target")
    _check_reduce(reduce)
    if weighting is not None and not callable(weighting):
        _check_choice(weighting, ("min_snr",), "weighting")
        if not min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be > 0, got {min_snr_gamma}.")
    if num_steps is not None:
        num_steps = schedules._check_steps(num_steps)
    noise_input = time_input() if noise_input is None else noise_input

    def loss(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        t: ArrayLike | None = None,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array:
        x0 = _f32(x0)
        batch = _check_batch(x0)
        if t is None or eps is None:
            key_t, key_eps = jax.random.split(_need_key(key, "t and eps"))
        if t is None:
            t = sample_time(key_t, batch, num_steps=num_steps, low_discrepancy=low_discrepancy)
        if eps is None:
            eps = jax.random.normal(key_eps, x0.shape, jnp.float32)
        t, eps = _f32(t), _f32(eps)
        _check_per_example(t, batch, "t")
        _check_like(eps, x0, "eps")

        lam = schedule(t)
        c = coefficients(schedule, t, x0.ndim)
        x_t = c.alpha * x0 + c.sigma * eps
        pred = call_network(apply, params, x_t, noise_input(t, lam), labels, **apply_kwargs)
        pred_target = convert(pred, x_t, c, parameterization, target)
        true_target = from_x0_eps(x0, eps, c, target)
        per_example = _reduce(jnp.square(true_target - pred_target), reduce)
        if weighting is None:
            return per_example
        if callable(weighting):
            w = _f32(weighting(lam))
        else:
            w = min_snr_weight(lam, min_snr_gamma, target)
        return w * per_example

    return loss


# ----------------------------------------------------------------------------------------------
# EDM (Karras et al. 2022)
# ----------------------------------------------------------------------------------------------


class EDMPreconditioning(NamedTuple):
    """EDM's preconditioning (Karras et al. 2022, Table 1, eq. 7), each shaped like sigma:
    ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)``."""

    c_skip: Array
    c_out: Array
    c_in: Array
    c_noise: Array


def edm_preconditioning(sigma: ArrayLike, sigma_data: float = 0.5) -> EDMPreconditioning:
    """``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``,
    ``c_in = 1 / sqrt(s^2 + sd^2)``, ``c_noise = log(s) / 4`` (s = sigma, sd = sigma_data)."""
    sigma = _f32(sigma)
    sd = float(sigma_data)
    var = jnp.square(sigma) + sd * sd
    return EDMPreconditioning(
        c_skip=sd * sd / var,
        c_out=sigma * sd * jax.lax.rsqrt(var),
        c_in=jax.lax.rsqrt(var),
        c_noise=0.25 * jnp.log(sigma),
    )


def edm_weight(sigma: ArrayLike, sigma_data: float = 0.5) -> Array:
    """EDM's loss weight ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2``
    (Karras et al. 2022, Table 1), which makes the effective weight of ``F`` one (eq. 8)."""
    sigma = _f32(sigma)
    sd = float(sigma_data)
    return (jnp.square(sigma) + sd * sd) / jnp.square(sigma * sd)


def sample_edm_sigma(
    key: Array, batch_size: int, p_mean: float = -1.2, p_std: float = 1.2
) -> Array:
    """EDM's training noise levels, ``log sigma ~ N(P_mean, P_std^2)`` (Table 1), ``(B,)``."""
    batch_size = schedules._check_steps(batch_size, "batch_size")
    return jnp.exp(p_mean + p_std * jax.random.normal(key, (batch_size,), jnp.float32))


def edm_denoiser(apply: Apply, sigma_data: float = 0.5) -> Callable[..., Array]:
    """The preconditioned denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)``
    (Karras et al. 2022, eq. 7) of a raw network ``F = apply``.

    Returns ``denoise(params, x, sigma, labels=None, **kwargs) -> x0_hat`` for the EDM
    (variance-exploding) input ``x = x0 + sigma n`` with per-example ``sigma`` ``(B,)``.
    ``F`` is called as ``apply(params, c_in x, c_noise[, labels])``: its ``t_input`` is
    ``c_noise = log(sigma) / 4``.
    """

    def denoise(
        params: Params, x: ArrayLike, sigma: ArrayLike, labels: Array | None = None, **kwargs: Any
    ) -> Array:
        x, sigma = _f32(x), _f32(sigma)
        _check_per_example(sigma, _check_batch(x, "x"), "sigma")
        pre = edm_preconditioning(sigma, sigma_data)
        c_skip, c_out, c_in = (_expand(c, x.ndim) for c in pre[:3])
        f = call_network(apply, params, c_in * x, pre.c_noise, labels, **kwargs)
        return c_skip * x + c_out * f

    return denoise


def edm_vp_denoiser(apply: Apply, sigma_data: float = 0.5) -> Apply:
    """An EDM-preconditioned network as a network of the usual contract on the VP ``x_t``.

    Returns ``x0_net(params, x_t, logsnr, labels=None, **kwargs) -> x0_hat``: its ``t_input``
    is the log-SNR (:func:`logsnr_input`) and its parameterization is ``x0``. It evaluates
    ``D(x_t / alpha; exp(-lambda / 2))`` (see the module docstring); alpha must be > 0.
    """
    denoise = edm_denoiser(apply, sigma_data)

    def x0_net(
        params: Params, x_t: ArrayLike, logsnr: ArrayLike, labels: Array | None = None,
        **kwargs: Any,
    ) -> Array:
        x_t, lam = _f32(x_t), _f32(logsnr)
        alpha, _ = schedules.alpha_sigma_from_logsnr(lam)
        sigma_edm = schedules.edm_sigma_from_logsnr(lam)
        return denoise(params, x_t / _expand(alpha, x_t.ndim), sigma_edm, labels, **kwargs)

    return x0_net


def edm_loss(
    apply: Apply,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    reduce: str = "mean",
) -> LossFn:
    """EDM's training loss (Karras et al. 2022, eq. 2 with Table 1's choices), per example:

    ``lambda(sigma) ||D(y + n; sigma) - y||^2``, ``n ~ N(0, sigma^2 I)``,
    ``log sigma ~ N(P_mean, P_std^2)``, ``lambda(sigma) = 1 / c_out^2``. Equivalently (eq. 8)
    ``||F(c_in (y + n); c_noise) - (y - c_skip (y + n)) / c_out||^2``.

    Returns ``loss(params, x0, key, labels=None, *, sigma=None, eps=None, **apply_kwargs) ->
    (B,)`` with ``n = sigma eps``; ``sigma`` ``(B,)`` and ``eps`` replace the draws from ``key``.
    """
    _check_reduce(reduce)
    denoise = edm_denoiser(apply, sigma_data)

    def loss(
        params: Params,
        x0: ArrayLike,
        key: Array | None,
        labels: Array | None = None,
        *,
        sigma: ArrayLike | None = None,
        eps: ArrayLike | None = None,
        **apply_kwargs: Any,
    ) -> Array:
        y = _f32(x0)
        batch = _check_batch(y)
        if sigma is None or eps is None:
            key_s, key_e = jax.random.split(_need_key(key, "sigma and eps"))
        if sigma is None:
            sigma = sample_edm_sigma(key_s, batch, p_mean, p_std)
        if eps is None:
            eps = jax.random.normal(key_e, y.shape, jnp.float32)
        sigma, eps = _f32(sigma), _f32(eps)
        _check_per_example(sigma, batch, "sigma")
        _check_like(eps, y, "eps")
        x = y + _expand(sigma, y.ndim) * eps
        d = denoise(params, x, sigma, labels, **apply_kwargs)
        return edm_weight(sigma, sigma_data) * _reduce(jnp.square(d - y), reduce)

    return loss
