"""Training normalizing flows by maximum likelihood: the loss, the train step and the task.

The loss is the negative log-likelihood per example, ``-mean_i log p(x_i)``, in the model's input
space; ``gen.train`` converts it to bits/dim in 8-bit space for dequantized images. Vector models
(``realnvp``, ``maf``, ``nsf``, ``nsf_ar``) see image events flattened, and their samples are
reshaped back; image models (``realnvp_image``, ``glow``) see ``(H, W, C)`` events. ActNorm layers
are initialized from the first training batch (Glow's data-dependent init).

Dequantization: by default the data pipeline adds uniform noise (``data.dequantize='uniform'``).
With ``model.dequantizer='variational'`` (image models; needs ``data.dequantize='none'`` and
``data.scale='unit'``) the task trains a Flow++ dequantizer ``q(u | x)`` jointly with the flow
on the bound ``log P(x) >= E_q[log p_model((x + u) / 256) - D log 256 - log q(u | x)]``
(``gen.flows.dequantization``); the loss is then minus that bound in nats per image and
``test_bpd`` its value in bits per 8-bit dimension (``model.deq_eval_samples`` draws of ``u``,
importance-weighted when more than one).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.flows import image_models, models
from gen.flows.dequantization import log_likelihood_bound, variational_dequantizer
from gen.flows.flow import Flow, realnvp
from gen.flows.image import actnorm_data_init
from gen.train.ema import EMA, ema_from_config, update_ema
from gen.train.optim import make_optimizer
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task


def nll_loss(flow: Flow, params, x: jax.Array) -> jax.Array:
    """Mean negative log-likelihood in nats of a batch ``x`` of the flow's events."""
    return -jnp.mean(jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x))


def make_train_step(flow: Flow, tx: optax.GradientTransformation, ema: EMA | None = None):
    """``step(state, batch, key) -> (state, {"loss"})``: one optimizer update of the NLL, then
    the moving average's update when ``ema`` is given."""

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        del key
        x = batch["x"]
        loss, grads = jax.value_and_grad(lambda p: nll_loss(flow, p, x))(state.params)
        return update_ema(apply_gradients(state, grads, tx), ema), {"loss": loss}

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


DEQUANTIZERS = ("uniform", "variational")


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The flow :class:`Task`: NLL training, ``nll`` evaluation, sampling and log-densities."""
    dequantizer = config.model.get("dequantizer", "uniform")
    if dequantizer not in DEQUANTIZERS:
        raise ConfigError(
            f"model.dequantizer={dequantizer!r} is not one of {list(DEQUANTIZERS)}."
        )
    if dequantizer == "variational":
        return build_variational_task(config, spec)
    flow = make_flow_from_config(config.model, spec)
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    image_model = config.model.name in IMAGE_MODELS
    event = (lambda x: x) if image_model else (lambda x: x.reshape(x.shape[0], -1))

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        x = event(batch["x"])
        params = flow.init(k_params, x[0])
        if image_model:
            params = actnorm_data_init(params, flow, x)
        return TrainState.create(params, tx, k_run, ema=ema)

    def log_prob(params, x: jax.Array) -> jax.Array:
        return jax.vmap(flow.log_prob, in_axes=(None, 0))(params, event(x))

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        del key
        return {"nll": -log_prob(params, batch["x"])}

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        del labels
        x = jax.vmap(flow.sample, in_axes=(None, 0))(params, jax.random.split(key, num))
        return x.reshape(num, *spec.shape)

    train_step = make_train_step(flow, tx, ema)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        return train_step(state, {**batch, "x": event(batch["x"])}, key)

    return Task(init, step, evaluate, sample, log_prob)


def build_variational_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The flow :class:`Task` with Flow++ variational dequantization (see the module docstring).

    Params are ``{"flow": ..., "dequantizer": ...}``. The batches hold ``x / 255`` for integer
    pixels ``x`` (``data.dequantize='none'``, ``data.scale='unit'``); the task recovers ``x``,
    draws ``u ~ q(u | x)`` and feeds ``(x + u) / 256`` to the flow. Samples are returned in the
    data's units, ``floor(256 y) / 255``.
    """
    model, data = config.model, config.data
    if model.name not in IMAGE_MODELS:
        raise ConfigError(
            f"model.dequantizer='variational' needs an image model ({list(IMAGE_MODELS)}), got "
            f"model.name={model.name!r}."
        )
    if data.get("dequantize", "uniform") != "none" or data.get("scale", "unit") != "unit":
        raise ConfigError(
            "model.dequantizer='variational' adds its own noise: set data.dequantize='none' and "
            "data.scale='unit'."
        )
    flow = make_flow_from_config(model, spec)
    deq = variational_dequantizer(
        spec.shape, num_steps=model.get("deq_steps", 2),
        hidden_channels=model.get("deq_hidden_channels", 16), num_blocks=1,
        num_groups=model.get("num_groups", 8) or None,
    )
    eval_samples = int(model.get("deq_eval_samples", 1))
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    dim = spec.dim

    def pixels(x: jax.Array) -> jax.Array:
        return jnp.round(x.astype(jnp.float32) * 255.0)

    def bounds(params, x: jax.Array, key: jax.Array, num_samples: int = 1) -> jax.Array:
        def one(pix: jax.Array, k: jax.Array) -> jax.Array:
            lp = functools.partial(flow.log_prob, params["flow"])
            return log_likelihood_bound(lp, deq, params["dequantizer"], pix, k,
                                        num_samples=num_samples)

        return jax.vmap(one)(pixels(x), jax.random.split(key, x.shape[0]))

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_flow, k_deq, k_u, k_run = jax.random.split(key, 4)
        pix = pixels(batch["x"])
        y = (pix + jax.random.uniform(k_u, pix.shape)) / 256.0
        flow_params = actnorm_data_init(flow.init(k_flow, y[0]), flow, y)
        params = {"flow": flow_params, "dequantizer": deq.init(k_deq, pix[0])}
        return TrainState.create(params, tx, k_run, ema=ema)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        loss, grads = jax.value_and_grad(
            lambda p: -jnp.mean(bounds(p, batch["x"], key))
        )(state.params)
        return update_ema(apply_gradients(state, grads, tx), ema), {"loss": loss}

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        return {"bpd": -bounds(params, batch["x"], key, eval_samples) / (dim * jnp.log(2.0))}

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        del labels
        y = jax.vmap(flow.sample, in_axes=(None, 0))(params["flow"], jax.random.split(key, num))
        return jnp.clip(jnp.floor(256.0 * y), 0.0, 255.0) / 255.0

    return Task(init, step, evaluate, sample, None)


def build_ffjord_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The FFJORD :class:`Task` (``gen.flows.continuous``): maximum likelihood with Hutchinson's
    trace (one Rademacher probe per example and block, ``model.train_trace``), evaluation with
    the exact trace for vectors of at most 16 dimensions and Hutchinson's unbiased estimate
    otherwise (images), both at ``model.eval_rtol`` / ``model.eval_atol``.

    Keys of ``config.model``: ``hidden``, ``num_blocks``, ``num_scales`` (images: FFJORD's
    multiscale architecture when > 1), ``activation``, ``time``, ``learn_time`` (FFJORD's
    ``train_T``), ``solver`` (``gen.diffusion.ode.METHODS``), ``num_steps`` (fixed-step
    solvers), ``rtol``, ``atol``, ``max_steps``, ``adjoint``, ``logit`` (images in [0, 1]:
    RealNVP's alpha, or 0 for none).
    """
    from gen.diffusion import ode
    from gen.flows import continuous as ffjord

    model = config.model
    image = spec.kind == "image"
    shape = tuple(spec.shape) if image else (spec.dim,)
    solver = model.get("solver", "dopri5")
    train_trace = model.get("train_trace", "hutchinson")
    for key, value, allowed in (("solver", solver, ode.METHODS),
                                ("train_trace", train_trace, ode.TRACE_METHODS),
                                ("adjoint", model.get("adjoint", "recursive"), ode.ADJOINTS)):
        if value not in allowed:
            raise ConfigError(f"model.{key}={value!r} is not one of {list(allowed)}.")
    logit = model.get("logit", 1e-6 if image else 0.0)
    num_scales = model.get("num_scales", 1)
    if num_scales != 1 and not image:
        raise ConfigError(f"model.num_scales={num_scales}: multiple scales need image data; "
                          "use 1 for vectors.")
    common = dict(num_blocks=model.get("num_blocks", 1), num_scales=num_scales,
                  hidden=tuple(model.get("hidden", (64,))),
                  activation=model.get("activation", None), logit=logit if logit else None,
                  time=model.get("time", 1.0), learn_time=bool(model.get("learn_time", False)),
                  solver=solver, num_steps=model.get("num_steps", 20),
                  max_steps=model.get("max_steps", 1000), adjoint=model.get("adjoint", "recursive"))
    try:
        train_model = ffjord.ffjord(shape, rtol=model.get("rtol", 1e-5),
                                    atol=model.get("atol", 1e-5), **common)
    except ValueError as e:  # e.g. image sides that the scales' squeezes do not divide
        raise ConfigError(f"model: {e}") from None
    eval_model = ffjord.ffjord(shape, rtol=model.get("eval_rtol", 1e-5),
                               atol=model.get("eval_atol", 1e-5), **common)
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    event = (lambda x: x) if image else (lambda x: x.reshape(x.shape[0], -1))

    def log_probs(m: ffjord.FFJORD, params, x: jax.Array, key: jax.Array | None) -> jax.Array:
        if key is None:
            return jax.vmap(m.log_prob, in_axes=(None, 0))(params, x)
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(m.log_prob, in_axes=(None, 0, 0))(params, x, keys)

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        return TrainState.create(train_model.init(k_params, event(batch["x"])[0]), tx, k_run,
                                 ema=ema)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        x = event(batch["x"])
        trace_key = key if train_trace == "hutchinson" else None
        loss, grads = jax.value_and_grad(
            lambda p: -jnp.mean(log_probs(train_model, p, x, trace_key)))(state.params)
        return update_ema(apply_gradients(state, grads, tx), ema), {"loss": loss}

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        exact = spec.dim <= 16
        return {"nll": -log_probs(eval_model, params, event(batch["x"]), None if exact else key)}

    def sample(params, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        del labels
        x = jax.vmap(eval_model.sample, in_axes=(None, 0))(params, jax.random.split(key, num))
        return x.reshape(num, *spec.shape)

    def log_prob(params, x: jax.Array) -> jax.Array:
        return log_probs(eval_model, params, event(x), None)

    return Task(init, step, evaluate, sample, None if image else log_prob)
