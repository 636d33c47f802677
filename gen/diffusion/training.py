"""Training tasks of the diffusion family: flow matching (``model.name="fm"``).

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
from gen.diffusion.networks import Network
from gen.train.optim import make_optimizer
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task


def make_fm_train_step(net: Network, loss_fn, tx: optax.GradientTransformation):
    """``step(state, batch, key) -> (state, {"loss"})`` for the flow-matching loss."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        k_loss, k_drop = jax.random.split(key)
        apply = functools.partial(net.apply, rng=k_drop)
        labels = batch.get("y") if net.class_conditional else None

        def objective(params):
            return jnp.mean(loss_fn(params, batch["x"], k_loss, labels, apply=apply))

        loss, grads = jax.value_and_grad(objective)(state.params)
        return apply_gradients(state, grads, tx), {"loss": loss}

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
    sampler = config.get("sampler", ml_collections.ConfigDict())
    method, num_steps = sampler.get("method", "heun"), sampler.get("num_steps", 50)
    guidance_scale = sampler.get("guidance_scale", None) if net.guidance else None

    def loss_fn(params, x, key, labels, apply):
        return fm.make_loss(apply, **loss_kwargs)(params, x, key, labels)

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        params = net.init(k_params, batch["x"][:1], batch.get("y", jnp.zeros(1, jnp.int32))[:1])
        return TrainState.create(params, tx, k_run)

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

    return Task(init, make_fm_train_step(net, loss_fn, tx), evaluate, sample,
                log_prob if spec.dim == 2 and not net.class_conditional else None)
