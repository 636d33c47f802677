"""The GAN family's task: ``model.name`` ``mlp_gan``, ``dcgan`` or ``resnet_gan``.

One train step, compiled once, does ``model.n_dis`` discriminator updates and one generator
update. The global batch of ``batch_size`` examples is split into ``n_dis`` slices; the
``lax.scan`` over the discriminator updates gives each update its own slice and a fresh batch of
``batch_size / n_dis`` generated examples. The generator update then draws its own
``batch_size / n_dis`` latents. With ``r`` and ``f`` the discriminator's outputs on real and
generated inputs, the discriminator minimizes ``loss(r, f).discriminator + penalty`` and the
generator ``loss(r, f).generator`` (``gen.gan.losses``, ``gen.gan.penalties``), each with its own
optimizer from ``optim.discriminator.*`` / ``optim.generator.*`` over the shared ``optim.*``
(TTUR); learning-rate schedules count each optimizer's own updates (``n_dis`` per step for
the discriminator, so both decay over the run). After the generator's update, its exponential
moving average moves (``ema_decay``, with ``ema_start`` steps of warm-up); sampling and
evaluation use the average.

The discriminator's inputs, real and generated alike, go through DiffAugment
(``model.diffaugment``), instance noise (``model.instance_noise``: Gaussian noise of that std,
decayed linearly to 0 over ``model.instance_noise_steps``, default ``num_steps``; Sønderby et
al. 2017) and PacGAN packing (``model.packing``) first. Generated inputs are held
constant in the discriminator's updates; the discriminator is held constant in the generator's.
The generator's BatchNorm statistics and the discriminator's spectral-norm vectors are the
state's ``model_state`` (``{"generator": {"batch_stats": ...}, "discriminator":
{"spectral": ...}}``); the statistics move in the generator's update, the vectors in the
discriminator's updates only.

Metrics per step: ``loss_discriminator`` (the mean over the ``n_dis`` updates, penalty
included), ``loss_generator``, their sum ``loss``, ``penalty``, and the mean outputs ``d_real``,
``d_fake``; a NaN or infinite loss of either player stops the run naming it and the step.
``evaluate`` reports the discriminator's mean output on held-out data and on generated data
(``test_d_real``, ``test_d_fake``) and, for vectors, the mean distance from a held-out example
to its nearest generated one (``test_nearest_sample_distance``, a cheap coverage score); the
sample-quality metrics come from ``config.eval.metrics`` and ``python -m experiments.evaluate``.

Keys of ``config.model`` (defaults in brackets): ``loss`` [non_saturating], ``penalty`` [none],
``penalty_weight`` [10.0], ``weight_clip`` [0: off; WGAN's 0.01], ``n_dis`` [1], ``packing`` [1],
``diffaugment`` [""], ``class_conditional`` [False], ``latent_dim``, ``spectral_norm`` (of the
discriminator), ``dtype`` [float32; bfloat16 for compute], and the architecture's sizes:
``g_hidden``, ``d_hidden``, ``g_batchnorm``, ``d_activation``, ``maxout_pieces``,
``d_fourier_features``, ``d_fourier_scale`` (mlp_gan),
``ch`` (dcgan), ``ngf``, ``ndf`` (resnet_gan).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.gan import losses as losses_lib
from gen.gan import penalties as penalties_lib
from gen.gan.dcgan import DCGANDiscriminator, DCGANGenerator
from gen.gan.diffaugment import diff_augment, parse_policy
from gen.gan.mlp import MLPDiscriminator, MLPGenerator
from gen.gan.packing import pack
from gen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from gen.train.ema import ema_from_config, update_ema
from gen.train.optim import make_optimizer, optim_for_part
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task

Array = jax.Array
MODELS = ("mlp_gan", "dcgan", "resnet_gan")
PARTS = ("generator", "discriminator")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated GAN settings of ``config.model`` (see the module docstring)."""

    name: str
    loss: str
    penalty: str
    penalty_weight: float
    weight_clip: float
    n_dis: int
    packing: int
    diffaugment: tuple[str, ...]
    num_classes: int | None
    latent_dim: int
    dtype: Any
    instance_noise: float = 0.0
    instance_noise_steps: int = 0


def _positive_int(model, key: str, default: int) -> int:
    value = model.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model.{key} must be an integer >= 1, got {value!r}.")
    return value


def parse_settings(config: ml_collections.ConfigDict, spec: DataSpec) -> Settings:
    """Checks ``config.model`` against the data; one-line :class:`ConfigError` for bad input."""
    model = config.model
    name = model.get("name")
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is not a GAN; use one of {', '.join(MODELS)}.")
    loss = model.get("loss", "non_saturating")
    losses_lib.get_loss(loss)
    penalty, weight = model.get("penalty", "none"), model.get("penalty_weight", 10.0)
    penalties_lib.get_penalty(penalty, weight)
    clip = model.get("weight_clip", 0.0)
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not clip >= 0:
        raise ConfigError(f"model.weight_clip must be a number >= 0 (0: off), got {clip!r}.")
    n_dis = model.get("n_dis", 1)
    if isinstance(n_dis, bool) or not isinstance(n_dis, int) or n_dis < 1:
        raise ConfigError(f"model.n_dis must be an integer >= 1 (discriminator updates per "
                          f"step), got {n_dis!r}.")
    packing = _positive_int(model, "packing", 1)
    policy = parse_policy(model.get("diffaugment", ""))
    conditional = bool(model.get("class_conditional", False))
    if conditional and not spec.num_classes:
        raise ConfigError("model.class_conditional (conditional BatchNorm and a projection "
                          "discriminator) needs labelled data; this dataset has none.")
    if conditional and packing > 1:
        raise ConfigError("model.packing > 1 is not supported with model.class_conditional; "
                          "set --config.model.packing=1.")
    if spec.kind == "vector":
        if name != "mlp_gan":
            raise ConfigError(f"model.name={name!r} is for images; use mlp_gan for vector data.")
        if policy:
            raise ConfigError("model.diffaugment is for images; set --config.model.diffaugment=''.")
    else:
        if name == "mlp_gan":
            raise ConfigError("model.name='mlp_gan' is for vectors; use dcgan or resnet_gan for "
                              "images.")
        side = 8 if name == "resnet_gan" else 4
        if spec.shape[0] % side or spec.shape[1] % side:
            raise ConfigError(f"model.name={name!r} needs image sides divisible by {side}, got "
                              f"{spec.shape[:2]}.")
        data = config.data
        if data.get("scale", "unit") != "symmetric" or data.get("dequantize", "uniform") != "none":
            raise ConfigError("GAN generators output tanh values in [-1, 1]: set "
                              "data.scale='symmetric' and data.dequantize='none'.")
    batch = config.batch_size
    if batch % n_dis or (batch // n_dis) % packing:
        raise ConfigError(
            f"batch_size={batch} must split into model.n_dis={n_dis} slices of a multiple of "
            f"model.packing={packing}; use e.g. --config.batch_size={n_dis * packing * 8}.")
    eval_batch = config.get("eval_batch_size", batch)
    if eval_batch % packing:
        raise ConfigError(f"eval_batch_size={eval_batch} must be a multiple of "
                          f"model.packing={packing}.")
    dtype = model.get("dtype", "float32")
    if dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"model.dtype={dtype!r} is not float32 or bfloat16.")
    noise = model.get("instance_noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
        raise ConfigError(f"model.instance_noise must be a number >= 0 (0: off), got {noise!r}.")
    noise_steps = model.get("instance_noise_steps", config.num_steps)
    if noise and (isinstance(noise_steps, bool) or not isinstance(noise_steps, int)
                  or noise_steps < 1):
        raise ConfigError(f"model.instance_noise_steps must be an integer >= 1, got "
                          f"{noise_steps!r}.")
    default_latent = 128 if spec.kind == "image" else 2
    return Settings(name, loss, penalty, float(weight), float(clip), n_dis, packing, policy,
                    spec.num_classes if conditional else None,
                    _positive_int(model, "latent_dim", default_latent),
                    jnp.bfloat16 if dtype == "bfloat16" else None, float(noise),
                    int(noise_steps) if noise else 0)


def make_networks(config: ml_collections.ConfigDict, spec: DataSpec,
                  settings: Settings) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator modules of ``model.name``."""
    model, s = config.model, settings
    sn = bool(model.get("spectral_norm", s.name == "resnet_gan"))
    if s.name == "mlp_gan":
        activation = model.get("d_activation", "leaky_relu")
        if activation not in ("leaky_relu", "maxout"):
            raise ConfigError(f"model.d_activation={activation!r} is not leaky_relu or maxout.")
        gen = MLPGenerator(spec.dim, tuple(model.get("g_hidden", (400, 400, 400, 400))),
                           bool(model.get("g_batchnorm", True)), s.num_classes, s.dtype)
        fourier = model.get("d_fourier_features", 0)
        if isinstance(fourier, bool) or not isinstance(fourier, int) or fourier < 0:
            raise ConfigError(f"model.d_fourier_features must be an integer >= 0 (0: off), got "
                              f"{fourier!r}.")
        dis = MLPDiscriminator(tuple(model.get("d_hidden", (200, 200, 200))), activation,
                               _positive_int(model, "maxout_pieces", 5), sn, s.num_classes,
                               s.dtype, fourier, float(model.get("d_fourier_scale", 1.0)),
                               s.packing)
    elif s.name == "dcgan":
        ch = _positive_int(model, "ch", 64)
        gen = DCGANGenerator(tuple(spec.shape), ch, s.num_classes, s.dtype)
        dis = DCGANDiscriminator(ch, sn, s.num_classes, s.dtype)
    else:
        gen = ResNetGenerator(tuple(spec.shape), _positive_int(model, "ngf", 256),
                              s.num_classes, s.dtype)
        dis = ResNetDiscriminator(_positive_int(model, "ndf", 128), sn, s.num_classes, s.dtype)
    return gen, dis


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The GAN :class:`Task` (see the module docstring)."""
    s = parse_settings(config, spec)
    gen, dis = make_networks(config, spec, s)
    loss_fn = losses_lib.get_loss(s.loss)
    penalty_fn = penalties_lib.get_penalty(s.penalty, s.penalty_weight)
    # Each optimizer counts its own updates: the discriminator's schedule spans n_dis per step.
    updates = {"generator": config.num_steps, "discriminator": config.num_steps * s.n_dis}
    txs = {p: make_optimizer(optim_for_part(config.optim, p), updates[p]) for p in PARTS}
    ema = ema_from_config(config, part="generator")
    per_update = config.batch_size // s.n_dis

    def latents(key: Array, num: int, labels: Array | None = None) -> tuple[Array, Array | None]:
        k_z, k_y = jax.random.split(key)
        z = jax.random.normal(k_z, (num, s.latent_dim))
        if s.num_classes is not None and labels is None:
            labels = jax.random.randint(k_y, (num,), 0, s.num_classes)
        return z, labels

    def generate(g_params, g_state: dict, z: Array, labels, train: bool):
        variables = {"params": g_params, **g_state}
        if not train or not g_state:
            return gen.apply(variables, z, labels, train=train), g_state
        return gen.apply(variables, z, labels, train=True, mutable=list(g_state))

    def discriminate(d_params, d_state: dict, x: Array, labels, update: bool):
        variables = {"params": d_params, **d_state}
        if not update or not d_state:
            return dis.apply(variables, x, labels, update_stats=False), d_state
        return dis.apply(variables, x, labels, update_stats=True, mutable=list(d_state))

    def noise_std(step: Array) -> Array:
        """Instance noise: ``instance_noise`` decayed linearly to 0 over its steps."""
        return s.instance_noise * jnp.clip(1.0 - step / s.instance_noise_steps, 0.0, 1.0)

    def d_input(x: Array, key: Array | None, std: Array | None = None) -> Array:
        if key is not None and s.diffaugment:
            x = diff_augment(x, jax.random.fold_in(key, 0), s.diffaugment)
        if key is not None and std is not None:
            x = x + std * jax.random.normal(jax.random.fold_in(key, 1), x.shape, x.dtype)
        return pack(x, s.packing)

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_g, k_d, k_run = jax.random.split(key, 3)
        labels = jnp.zeros((s.packing,), jnp.int32) if s.num_classes else None
        z = jnp.zeros((2, s.latent_dim))
        g_vars = gen.init(k_g, z, None if labels is None else labels[:1].repeat(2), train=False)
        x = jnp.zeros((s.packing, *spec.shape), jnp.float32)
        d_vars = dis.init({"params": k_d}, pack(x, s.packing),
                          None if labels is None else labels[:1])
        g_params = g_vars["params"]
        g_state = {k: v for k, v in g_vars.items() if k != "params"}
        d_params = d_vars["params"]
        d_state = {k: v for k, v in d_vars.items() if k != "params"}
        return TrainState.create(
            {"generator": g_params, "discriminator": d_params}, txs, k_run, ema=ema,
            model_state={"generator": g_state, "discriminator": d_state})

    def d_update(state: TrainState, inputs) -> tuple[TrainState, dict]:
        real, real_labels, key = inputs
        k_z, k_real, k_fake, k_pen = jax.random.split(key, 4)
        z, fake_labels = latents(k_z, real.shape[0])
        fake, _ = generate(state.params["generator"], state.model_state["generator"], z,
                           fake_labels, train=True)
        fake = jax.lax.stop_gradient(fake)
        std = noise_std(state.step) if s.instance_noise else None
        real_in, fake_in = d_input(real, k_real, std), d_input(fake, k_fake, std)
        num_real = real_in.shape[0]
        both = jnp.concatenate([real_in, fake_in])
        both_labels = (None if s.num_classes is None
                       else jnp.concatenate([real_labels, fake_labels]))
        d_state = state.model_state["discriminator"]

        def objective(d_params):
            out, new_state = discriminate(d_params, d_state, both, both_labels, update=True)
            r, f = out[:num_real], out[num_real:]
            value = loss_fn(r, f).discriminator
            penalty = jnp.zeros((), jnp.float32)
            if penalty_fn is not None:
                labels = fake_labels if s.penalty == "r2" else real_labels
                critic = lambda x: discriminate(d_params, new_state, x, labels, False)[0]
                penalty = penalty_fn(critic, real_in, fake_in, k_pen)
            return value + penalty, (new_state, penalty, jnp.mean(r), jnp.mean(f))

        (value, (new_state, penalty, r, f)), grads = jax.value_and_grad(
            objective, has_aux=True)(state.params["discriminator"])
        state = apply_gradients(state, grads, txs, part="discriminator")
        if s.weight_clip > 0:
            clipped = losses_lib.clip_weights(state.params["discriminator"], s.weight_clip)
            state = state.replace(params={**state.params, "discriminator": clipped})
        state = state.replace(model_state={**state.model_state, "discriminator": new_state})
        return state, {"loss_discriminator": value, "penalty": penalty, "d_real": r,
                       "d_fake": f}

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        k_dis, k_z, k_aug = jax.random.split(key, 3)
        x = batch["x"].reshape(s.n_dis, per_update, *spec.shape)
        y = None
        if s.num_classes is not None:
            y = batch["y"].reshape(s.n_dis, per_update)
        keys = jax.random.split(k_dis, s.n_dis)
        if s.n_dis == 1:
            state, d_metrics = d_update(state, (x[0], None if y is None else y[0], keys[0]))
        else:
            state, d_metrics = jax.lax.scan(d_update, state, (x, y, keys))
            d_metrics = jax.tree.map(jnp.mean, d_metrics)

        z, labels = latents(k_z, per_update)
        g_state = state.model_state["generator"]
        d_params, d_state = state.params["discriminator"], state.model_state["discriminator"]

        std = noise_std(state.step) if s.instance_noise else None

        def objective(g_params):
            fake, new_state = generate(g_params, g_state, z, labels, train=True)
            f, _ = discriminate(d_params, d_state, d_input(fake, k_aug, std), labels,
                                update=False)
            return loss_fn(jnp.zeros_like(f), f).generator, new_state

        (g_loss, new_g_state), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params["generator"])
        state = apply_gradients(state, grads, txs, part="generator")
        state = state.replace(model_state={**state.model_state, "generator": new_g_state})
        state = update_ema(state, ema)
        d_loss = d_metrics.pop("loss_discriminator")
        return state, {"loss": d_loss + g_loss, "loss_discriminator": d_loss,
                       "loss_generator": g_loss, **d_metrics}

    def eval_params(state: TrainState) -> dict:
        return {"generator": state.eval_params()["generator"],
                "discriminator": state.params["discriminator"],
                "model_state": state.model_state}

    def sample(params, key: jax.Array, num: int, labels: Array | None = None) -> Array:
        z, labels = latents(key, num, labels)
        x, _ = generate(params["generator"], params["model_state"]["generator"], z, labels,
                        train=False)
        return x

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, Array]:
        x = batch["x"]
        n = x.shape[0]
        labels = batch.get("y") if s.num_classes is not None else None
        d_state = params["model_state"]["discriminator"]
        k_fake, k_many = jax.random.split(key)

        def critic(images, y):
            out, _ = discriminate(params["discriminator"], d_state, pack(images, s.packing), y,
                                  update=False)
            return jnp.repeat(out, s.packing)  # one value per example

        fake = sample(params, k_fake, n, labels)
        out = {"d_real": critic(x, labels), "d_fake": critic(fake, labels)}
        if spec.kind == "vector":
            many = sample(params, k_many, 1024)
            d2 = jnp.sum(x**2, 1)[:, None] - 2 * x @ many.T + jnp.sum(many**2, 1)[None]
            out["nearest_sample_distance"] = jnp.sqrt(jnp.maximum(jnp.min(d2, axis=1), 0.0))
        return out

    return Task(init, step, evaluate, sample, eval_params=eval_params)
