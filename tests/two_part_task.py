"""A tiny two-network task for the harness tests, and its config (this file is both).

A GAN on 2-D data: a generator with BatchNorm (its statistics are model state, not a gradient
target) and a discriminator, each with its own optimizer (TTUR settings from
``optim.generator`` / ``optim.discriminator``), ``n_dis`` discriminator updates scanned inside
the step, and an EMA of the generator only, with warm-up.

    PYTHONPATH=tests python -m experiments.run --config tests/two_part_task.py --workdir /tmp/w
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen.train import (
    Task,
    TrainState,
    apply_gradients,
    ema_from_config,
    make_optimizer,
    optim_for_part,
    update_ema,
)

LATENT = 4


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 20
    config.batch_size = 64
    config.log_every = 5
    config.checkpoint_every = 10
    config.eval_every = 10
    config.keep_checkpoints = 3
    config.num_samples = 100
    config.ema_decay = 0.9
    config.ema_start = 5
    config.data = ml_collections.ConfigDict(
        {"source": "toy2d", "name": "8gaussians", "num_train": 512, "num_test": 128})
    config.model = ml_collections.ConfigDict(
        {"name": "two_part_task:build_task", "hidden": 16, "n_dis": 2})
    config.optim = ml_collections.ConfigDict({"name": "adam", "learning_rate": 1e-3})
    config.optim.generator = ml_collections.ConfigDict({"learning_rate": 2e-4, "b1": 0.5})
    config.optim.discriminator = ml_collections.ConfigDict({"b1": 0.0, "b2": 0.9})
    return config


class Generator(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, z: jax.Array, train: bool) -> jax.Array:
        h = nn.Dense(self.hidden)(z)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        return nn.Dense(2)(nn.relu(h))


class Discriminator(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(nn.leaky_relu(nn.Dense(self.hidden)(x), 0.2))[..., 0]


def build_task(config: ml_collections.ConfigDict, spec) -> Task:
    gen, dis = Generator(config.model.hidden), Discriminator(config.model.hidden)
    parts = ("generator", "discriminator")
    txs = {p: make_optimizer(optim_for_part(config.optim, p), config.num_steps) for p in parts}
    ema = ema_from_config(config, part="generator")
    n_dis = config.model.n_dis

    def generate(params, stats, z):
        out, updates = gen.apply({"params": params, "batch_stats": stats}, z, train=True,
                                 mutable=["batch_stats"])
        return out, updates["batch_stats"]

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_gen, k_dis, k_run = jax.random.split(key, 3)
        g = gen.init(k_gen, jnp.zeros((2, LATENT)), train=False)
        d = dis.init(k_dis, batch["x"][:1])
        return TrainState.create({"generator": g["params"], "discriminator": d["params"]}, txs,
                                 k_run, ema=ema, model_state={"batch_stats": g["batch_stats"]})

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        x = batch["x"].reshape(n_dis, -1, spec.dim)
        k_dis, k_gen = jax.random.split(key)

        def dis_update(state, inputs):
            real, k = inputs
            fake, _ = generate(state.params["generator"], state.model_state["batch_stats"],
                               jax.random.normal(k, (real.shape[0], LATENT)))

            def loss(p):
                return (jnp.mean(jax.nn.softplus(-dis.apply({"params": p}, real)))
                        + jnp.mean(jax.nn.softplus(dis.apply({"params": p}, fake))))

            value, grads = jax.value_and_grad(loss)(state.params["discriminator"])
            return apply_gradients(state, grads, txs, "discriminator"), value

        state, d_losses = jax.lax.scan(dis_update, state, (x, jax.random.split(k_dis, n_dis)))
        z = jax.random.normal(k_gen, (x.shape[1], LATENT))

        def gen_loss(p):
            fake, stats = generate(p, state.model_state["batch_stats"], z)
            logits = dis.apply({"params": state.params["discriminator"]}, fake)
            return jnp.mean(jax.nn.softplus(-logits)), stats

        (g_loss, stats), grads = jax.value_and_grad(gen_loss, has_aux=True)(
            state.params["generator"])
        state = apply_gradients(state, grads, txs, "generator")
        state = update_ema(state.replace(model_state={"batch_stats": stats}), ema)
        d_loss = jnp.mean(d_losses)
        return state, {"loss": d_loss + g_loss, "loss_discriminator": d_loss,
                       "loss_generator": g_loss}

    def eval_params(state: TrainState) -> dict:
        return {"generator": state.eval_params()["generator"],
                "batch_stats": state.model_state["batch_stats"]}

    def sample(params, key: jax.Array, num: int, labels=None) -> jax.Array:
        del labels
        z = jax.random.normal(key, (num, LATENT))
        return gen.apply({"params": params["generator"], "batch_stats": params["batch_stats"]},
                         z, train=False)

    def evaluate(params, batch: dict, key: jax.Array) -> dict:
        fake = sample(params, key, 256)
        distance = jnp.min(jnp.sum((batch["x"][:, None] - fake[None]) ** 2, -1), axis=1)
        return {"nearest_sample_distance": jnp.sqrt(distance)}

    return Task(init, step, evaluate, sample, eval_params=eval_params)
