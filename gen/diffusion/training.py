"""Training tasks of the diffusion family: DDPM-style diffusion (``model.name="ddpm"``) and flow
matching (``model.name="fm"``).

DDPM trains a denoiser with the simple loss (eps, x0 or v target, optional min-SNR weighting) on
any schedule of ``gen.diffusion.schedules``, in discrete time (``model.num_train_steps = T``,
``t_i = (i + 1) / T``) or continuous time (``num_train_steps = 0``). With
``model.variance="learned_range"`` (default ``"fixed"``) it is Improved DDPM (Nichol & Dhariwal
2021): the network also outputs the variance interpolation v (2C channels), trained with the
hybrid loss ``L_simple + model.vlb_weight L_vlb`` (default 0.001, ``losses.hybrid_loss``; discrete
time only); the ``ddpm`` sampler then uses the learned variance (unless
``sampler.options.variance`` names a fixed one), the other samplers and the likelihood ODE the
mean part only, and the image VLB the learned variance. It samples with any sampler
of ``gen.diffusion.samplers`` (``config.sampler``: ``name``, ``num_steps``, ``spacing``,
``options``, ``guidance_scale``, and ``dynamic_threshold_ratio`` with ``sample_max_value`` for
Imagen's dynamic thresholding of x0), from the EMA params. ``evaluate`` reports, for
images, the full discrete VLB in bits per 8-bit dimension (Ho et al. 2020; data scaled to [-1, 1]
without dequantization) and, for vectors, the exact likelihood of the probability-flow ODE.

Flow matching regresses the network on the conditional velocity of the path
``x_t = (1 - t) x0 + t eps`` (t = 0 data, t = 1 noise); sampling integrates the learned ODE
from noise to data, and ``evaluate`` reports the exact log-likelihood through the same ODE (exact
trace for vectors, Hutchinson's estimate for images), so ``test_nll`` / ``test_bpd`` are those of
the continuous model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen.data.source import DataSpec
from gen.diffusion import flow_matching as fm
from gen.diffusion import losses, ode, process, samplers, schedules, timesteps
from gen.diffusion.networks import Network
from gen.diffusion.parameterization import vp_coefficients
from gen.errors import ConfigError
from gen.train.ema import EMA, ema_from_config, update_ema
from gen.train.optim import make_optimizer
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task


def make_fm_train_step(net: Network, loss_fn, tx: optax.GradientTransformation,
                       ema: EMA | None = None):
    """``step(state, batch, key) -> (state, {"loss"})`` for the flow-matching loss, with the
    moving average's update when ``ema`` is given."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        k_loss, k_drop = jax.random.split(key)
        apply = functools.partial(net.apply, rng=k_drop)
        labels = batch.get("y") if net.class_conditional else None

        def objective(params):
            return jnp.mean(loss_fn(params, batch["x"], k_loss, labels, apply=apply))

        loss, grads = jax.value_and_grad(objective)(state.params)
        return update_ema(apply_gradients(state, grads, tx), ema), {"loss": loss}

    return step


def build_fm_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The flow-matching :class:`Task` (see the module docstring)."""
    model = config.model
    net = Network(model, spec)
    sigma_min = float(model.get("sigma_min", 0.0))
    loss_kwargs = dict(
        sigma_min=sigma_min, time_distribution=model.get("time_distribution", "uniform"),
        label_dropout=float(model.get("label_dropout", 0.1 if net.guidance else 0.0)),
        null_label=net.null_label)
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    sampler = config.get("sampler", ml_collections.ConfigDict())
    method, num_steps = sampler.get("method", "heun"), sampler.get("num_steps", 50)
    guidance_scale = sampler.get("guidance_scale", None) if net.guidance else None

    def loss_fn(params, x, key, labels, apply):
        return fm.make_loss(apply, **loss_kwargs)(params, x, key, labels)

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        params = net.init(k_params, batch["x"][:1], batch.get("y", jnp.zeros(1, jnp.int32))[:1])
        return TrainState.create(params, tx, k_run, ema=ema)

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        k_noise, k_labels = jax.random.split(key)
        labels = net.labels_for_sampling(k_labels, num, labels)
        velocity = fm.velocity_field(net.apply, params, labels=labels, sigma_min=sigma_min,
                                     guidance_scale=guidance_scale, null_label=net.null_label)
        noise = jax.random.normal(k_noise, (num, *spec.shape))
        return fm.sample(velocity, noise, method=method, num_steps=num_steps)

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        labels = batch.get("y") if net.class_conditional else None
        method = "exact" if spec.dim <= 16 else "hutchinson"
        out = fm.log_likelihood(net.apply, params, batch["x"], labels=labels, sigma_min=sigma_min,
                                method=method, key=key, rtol=1e-4, atol=1e-4)
        return {"nll": -out.log_prob}

    def log_prob(params, x: jax.Array) -> jax.Array:
        return fm.log_likelihood(net.apply, params, x, sigma_min=sigma_min, method="exact",
                                 rtol=1e-3, atol=1e-3).log_prob

    return Task(init, make_fm_train_step(net, loss_fn, tx, ema), evaluate, sample,
                log_prob if spec.dim == 2 and not net.class_conditional else None)


def make_schedule(model: ml_collections.ConfigDict) -> schedules.Schedule:
    """``model.schedule`` (a name in ``schedules.SCHEDULES``) with ``model.schedule_kwargs``."""
    kwargs = dict(model.get("schedule_kwargs", {}))
    try:
        return schedules.get_schedule(model.get("schedule", "cosine"), **kwargs)
    except ValueError as e:
        raise ConfigError(f"model.schedule: {e}") from e


def make_ddpm_train_step(net: Network, loss_fn, tx: optax.GradientTransformation,
                         label_dropout: float, ema: EMA | None = None):
    """``step(state, batch, key) -> (state, {"loss"})`` for a per-example denoising loss, with
    the moving average's update when ``ema`` is given."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        k_loss, k_drop, k_label = jax.random.split(key, 3)
        labels = batch.get("y") if net.class_conditional else None
        if labels is not None and label_dropout > 0:  # learn the unconditional model too
            drop = jax.random.bernoulli(k_label, label_dropout, labels.shape)
            labels = jnp.where(drop, net.null_label, labels)

        def objective(params):
            return jnp.mean(loss_fn(params, batch["x"], k_loss, labels, rng=k_drop))

        loss, grads = jax.value_and_grad(objective)(state.params)
        return update_ema(apply_gradients(state, grads, tx), ema), {"loss": loss}

    return step


MODEL_VARIANCES = ("fixed", "learned_range")


def _learned_variance(model: ml_collections.ConfigDict, num_train_steps: int | None) -> bool:
    """``model.variance``: ``"fixed"`` (the default) or ``"learned_range"``, checked."""
    variance = model.get("variance", "fixed")
    if variance not in MODEL_VARIANCES:
        raise ConfigError(f"model.variance={variance!r} is not one of "
                          f"{', '.join(MODEL_VARIANCES)}.")
    if variance != "learned_range":
        return False
    if not num_train_steps:
        raise ConfigError("model.variance='learned_range' needs discrete time: set "
                          "model.num_train_steps > 0.")
    if model.get("weighting", None) is not None:
        raise ConfigError("model.weighting does not apply to model.variance='learned_range' "
                          "(its loss is the hybrid L_simple + vlb_weight L_vlb); set it to None.")
    return True


def build_ddpm_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The diffusion :class:`Task` (see the module docstring)."""
    model = config.model
    schedule = make_schedule(model)
    num_train_steps = int(model.get("num_train_steps", 1000)) or None
    learned = _learned_variance(model, num_train_steps)
    net = Network(model, spec, learned_variance=learned)
    parameterization = model.get("parameterization", "eps")
    raw_t = process.time_input(1.0)  # the Network scales t itself
    if learned:
        try:
            loss_fn = losses.hybrid_loss(
                net.apply, schedule, num_train_steps, parameterization=parameterization,
                target=model.get("target", "eps"), vlb_weight=float(model.get("vlb_weight", 0.001)),
                decoder="discretized" if spec.kind == "image" else "gaussian", noise_input=raw_t)
        except ValueError as e:
            raise ConfigError(f"model.vlb_weight / model.target: {e}") from e
    else:
        loss_fn = process.denoising_loss(
            net.apply, schedule, parameterization=parameterization,
            target=model.get("target", "eps"), weighting=model.get("weighting", None),
            min_snr_gamma=model.get("min_snr_gamma", 5.0), num_steps=num_train_steps,
            noise_input=raw_t)
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    label_dropout = float(model.get("label_dropout", 0.1 if net.guidance else 0.0))
    sampler_cfg = config.get("sampler", ml_collections.ConfigDict())
    sampler_name = sampler_cfg.get("name", "ddim")
    sampler = samplers.get_sampler(sampler_name)
    num_sampling_steps = int(sampler_cfg.get("num_steps", 50))
    if num_sampling_steps < 1:
        raise ConfigError(f"sampler.num_steps must be >= 1, got {num_sampling_steps}.")
    if num_train_steps:
        # "leading" (diffusers' DDIM default) starts below t = 1: an eps-predictor's x0 estimate
        # there is divided by alpha(1), about 5e-5 for the cosine schedule, and blows up on
        # unclipped (vector) data. Use "trailing" with v or x0 parameterizations.
        spacing_name = sampler_cfg.get("spacing", "leading")
        if spacing_name not in ("leading", "trailing", "linspace"):
            raise ConfigError(f"sampler.spacing={spacing_name!r} is not leading, trailing or "
                              "linspace.")
        spacing = getattr(timesteps, spacing_name)
        ts = samplers.times_from_timesteps(spacing(num_train_steps, num_sampling_steps),
                                           num_train_steps)
    else:
        ts = jnp.linspace(1.0, 0.0, num_sampling_steps + 1)
    sampler_options = dict(sampler_cfg.get("options", {}))
    threshold_ratio = sampler_cfg.get("dynamic_threshold_ratio", None)
    if threshold_ratio is not None:  # Imagen's dynamic thresholding of x0 (diffusers' names)
        sampler_options["x0_transform"] = samplers.dynamic_threshold(
            float(threshold_ratio), float(sampler_cfg.get("sample_max_value", 1.0)))
    # A learned variance is used by ddpm (unless sampler.options.variance picks a fixed one);
    # every other sampler, and the probability-flow ODE, take the mean part only.
    if learned and sampler_name == "ddpm":
        sampler_options.setdefault("variance", "learned_range")
    sample_learned = (learned and sampler_name == "ddpm"
                      and sampler_options["variance"] == "learned_range")
    guidance_scale = sampler_cfg.get("guidance_scale", None)
    if guidance_scale is not None and not net.guidance:
        raise ConfigError("sampler.guidance_scale needs a model trained with model.guidance=True.")
    if spec.kind == "image" and config.data.get("dequantize", "uniform") != "none":
        raise ConfigError("ddpm on images models 8-bit data directly: set data.dequantize='none' "
                          "and data.scale='symmetric'.")

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        params = net.init(k_params, batch["x"][:1], batch.get("y", jnp.zeros(1, jnp.int32))[:1])
        return TrainState.create(params, tx, k_run, ema=ema)

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        k_noise, k_labels, k_sampler = jax.random.split(key, 3)
        labels = net.labels_for_sampling(k_labels, num, labels)
        denoiser = process.sampling_denoiser(net.apply, params, schedule, raw_t,
                                             conditional=net.class_conditional,
                                             learned_variance=learned)
        if net.class_conditional:
            denoiser = samplers.class_conditional(denoiser)
        if learned and not sample_learned:
            denoiser = samplers.mean_only(denoiser)
        if net.class_conditional and guidance_scale is not None:
            denoiser = samplers.guided(denoiser, guidance_scale, net.null_label,
                                       learned_variance=sample_learned)
        x_T = jax.random.normal(k_noise, (num, *spec.shape))
        x = sampler(denoiser, parameterization, schedule, x_T, ts, key=k_sampler, labels=labels,
                    clip_x0=1.0 if spec.kind == "image" else None, **sampler_options)
        return jnp.clip(x, -1.0, 1.0) if spec.kind == "image" else x

    if spec.kind == "image":
        vlb = losses.discrete_vlb(net.apply, schedule, num_train_steps or 1000,
                                  parameterization=parameterization, noise_input=raw_t,
                                  variance="learned_range" if learned else "small")

        def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
            labels = batch.get("y") if net.class_conditional else None
            nll = vlb(params, batch["x"], key, labels)
            return {"bpd": nll / (spec.dim * jnp.log(2.0))}
    else:
        def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
            labels = batch.get("y") if net.class_conditional else None
            denoiser = process.sampling_denoiser(net.apply, params, schedule, raw_t,
                                                 conditional=labels is not None,
                                                 learned_variance=learned)
            if labels is not None:
                denoiser = samplers.class_conditional(denoiser)
            if learned:
                denoiser = samplers.mean_only(denoiser)
            if labels is not None:
                denoiser = samplers.with_labels(denoiser, labels)
            velocity = ode.probability_flow(
                denoiser, functools.partial(vp_coefficients, schedule), parameterization)
            t0 = 1e-3 if num_train_steps is None else 1.0 / num_train_steps
            out = ode.log_likelihood(velocity, batch["x"], t0=t0, method="exact", rtol=1e-4,
                                     atol=1e-4)
            return {"nll": -out.log_prob}

    return Task(init, make_ddpm_train_step(net, loss_fn, tx, label_dropout, ema), evaluate,
                sample)
