"""Training normalizing flows by maximum likelihood: the loss, the train step and the task.

The loss is the negative log-likelihood per example, ``-mean_i log p(x_i)``, in the model's input
space; ``gen.train`` converts it to bits/dim for dequantized images. Image events are flattened
for vector models and reshaped back when sampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.flows.flow import Flow, realnvp
from gen.train.optim import make_optimizer
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task


def nll_loss(flow: Flow, params, x: jax.Array) -> jax.Array:
    """Mean negative log-likelihood in nats of a batch ``x`` of shape ``(B, D)``."""
    return -jnp.mean(jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x))


def make_train_step(flow: Flow, tx: optax.GradientTransformation):
    """``step(state, batch, key) -> (state, {"loss"})``: one Adam-style update of the NLL."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        del key
        x = batch["x"].reshape(batch["x"].shape[0], -1)
        loss, grads = jax.value_and_grad(lambda p: nll_loss(flow, p, x))(state.params)
        return apply_gradients(state, grads, tx), {"loss": loss}

    return step


def make_flow_from_config(model: ml_collections.ConfigDict, spec: DataSpec) -> Flow:
    """The flow that ``config.model`` names, for events of ``spec.dim`` scalars."""
    if model.name == "realnvp":
        return realnvp(
            spec.dim,
            num_layers=model.get("num_layers", 8),
            hidden=tuple(model.get("hidden", (128, 128))),
            transformer=model.get("transformer", "affine"),
        )
    raise ConfigError(f"model.name={model.name!r} is not a flow model of gen.flows.training.")


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The flow :class:`Task`: NLL training, ``nll`` evaluation, sampling and log-densities."""
    flow = make_flow_from_config(config.model, spec)
    tx = make_optimizer(config.optim, config.num_steps)

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        params = flow.init(k_params, batch["x"][0].reshape(-1))
        return TrainState.create(params, tx, k_run)

    def log_prob(params, x: jax.Array) -> jax.Array:
        return jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x.reshape(x.shape[0], -1))

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        del key
        return {"nll": -log_prob(params, batch["x"])}

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        del labels
        x = jax.vmap(flow.sample, in_axes=(None, 0))(params, jax.random.split(key, num))
        return x.reshape(num, *spec.shape)

    return Task(init, make_train_step(flow, tx), evaluate, sample, log_prob)
