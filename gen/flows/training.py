"""Training normalizing flows by maximum likelihood: the loss, the train step and the task.

The loss is the negative log-likelihood per example, ``-mean_i log p(x_i)``, in the model's input
space; ``gen.train`` converts it to bits/dim in 8-bit space for dequantized images. Vector models
(``realnvp``, ``maf``, ``nsf``, ``nsf_ar``) see image events flattened, and their samples are
reshaped back; image models (``realnvp_image``, ``glow``) see ``(H, W, C)`` events. ActNorm layers
are initialized from the first training batch (Glow's data-dependent init).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.flows import image_models, models
from gen.flows.flow import Flow, realnvp
from gen.flows.image import actnorm_data_init
from gen.train.optim import make_optimizer
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task


def nll_loss(flow: Flow, params, x: jax.Array) -> jax.Array:
    """Mean negative log-likelihood in nats of a batch ``x`` of the flow's events."""
    return -jnp.mean(jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x))


def make_train_step(flow: Flow, tx: optax.GradientTransformation):
    """``step(state, batch, key) -> (state, {"loss"})``: one optimizer update of the NLL."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        del key
        x = batch["x"]
        loss, grads = jax.value_and_grad(lambda p: nll_loss(flow, p, x))(state.params)
        return apply_gradients(state, grads, tx), {"loss": loss}

    return step


VECTOR_MODELS = ("realnvp", "maf", "nsf", "nsf_ar")
IMAGE_MODELS = ("realnvp_image", "glow")


def make_flow_from_config(model: ml_collections.ConfigDict, spec: DataSpec) -> Flow:
    """The flow that ``config.model`` names, for ``spec``'s events (flattened for vector models)."""
    name = model.name
    hidden = tuple(model.get("hidden", (128, 128)))
    layers = model.get("num_layers", 8)
    if name == "realnvp":
        return realnvp(spec.dim, num_layers=layers, hidden=hidden,
                       transformer=model.get("transformer", "affine"))
    if name == "maf":
        return models.maf(spec.dim, num_layers=layers, hidden=hidden,
                          transformer=model.get("transformer", "affine"))
    if name in ("nsf", "nsf_ar"):
        build = models.nsf_coupling if name == "nsf" else models.nsf_autoregressive
        return build(spec.dim, num_layers=layers, num_bins=model.get("num_bins", 8),
                     bound=model.get("bound", 3.0), hidden=hidden)
    if name in IMAGE_MODELS:
        if spec.kind != "image":
            raise ConfigError(f"model.name={name!r} needs image data; this dataset holds vectors.")
        logit = model.get("logit", 0.05)
        kwargs = dict(num_scales=model.get("num_scales", 2), num_steps=model.get("num_steps", 4),
                      hidden_channels=model.get("hidden_channels", 64),
                      num_blocks=model.get("num_blocks", 2), num_groups=model.get("num_groups", 8),
                      logit=logit if logit else None)
        build = image_models.glow if name == "glow" else image_models.realnvp_image
        return build(spec.shape, **kwargs)
    raise ConfigError(f"model.name={name!r} is not a flow model of gen.flows.training.")


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The flow :class:`Task`: NLL training, ``nll`` evaluation, sampling and log-densities."""
    flow = make_flow_from_config(config.model, spec)
    tx = make_optimizer(config.optim, config.num_steps)
    image_model = config.model.name in IMAGE_MODELS
    event = (lambda x: x) if image_model else (lambda x: x.reshape(x.shape[0], -1))

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        x = event(batch["x"])
        params = flow.init(k_params, x[0])
        if image_model:
            params = actnorm_data_init(params, flow, x)
        return TrainState.create(params, tx, k_run)

    def log_prob(params, x: jax.Array) -> jax.Array:
        return jax.vmap(flow.log_prob, in_axes=(None, 0))(params, event(x))

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        del key
        return {"nll": -log_prob(params, batch["x"])}

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        del labels
        x = jax.vmap(flow.sample, in_axes=(None, 0))(params, jax.random.split(key, num))
        return x.reshape(num, *spec.shape)

    train_step = make_train_step(flow, tx)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        return train_step(state, {**batch, "x": event(batch["x"])}, key)

    return Task(init, step, evaluate, sample, log_prob)
