"""Training tasks of the VAE family: ``vae`` (ELBO), ``iwae`` (importance-weighted bound) and
``vqvae`` (VQ-VAE with a PixelCNN prior over its codes).

``vae`` and ``iwae`` (``gen.vae.models``): one Gaussian latent layer (``model.latent_dim``) or
Burda et al.'s two (``model.latent_dim2 > 0``), MLP or conv networks (``model.network``), a
decoder likelihood (``model.likelihood``), optionally conditional on labels
(``model.class_conditional``: a CVAE). ``vae`` minimizes ``-E_q[log p(x | z)] + beta_t KL`` with
``model.k`` samples of z, KL analytic where it exists, ``model.beta``, free bits
(``model.free_bits`` nats per each of ``model.free_bits_groups`` groups) and a linear KL
warm-up over ``model.kl_warmup_steps``. ``iwae`` maximizes ``L_k`` with ``k = model.k``, with
the reparameterization gradient or DReG for the encoder (``model.gradient='dreg'``).
``evaluate`` reports the importance-sampled log-likelihood with ``model.eval_samples`` samples
(drawn ``model.eval_chunk`` at a time), the negative ELBO and the number of active units.

Units, as in the other families: vectors and binarized images (Gaussian, Bernoulli) give
``test_nll`` and ``test_nelbo`` in nats per example; 8-bit images with the discretized logistic
mixture give ``test_bpd`` and ``test_nelbo_bpd`` in bits per 8-bit dimension.

``vqvae`` (``gen.vae.quantizer``, ``gen.vae.prior``): a conv encoder to an ``(h, w)`` grid of
``model.code_dim``-vectors, quantized to ``model.num_codes`` codes (EMA codebook by default,
``model.codebook='loss'`` for the codebook loss; dead codes restarted), and a conv decoder.
The state has two parts with their own optimizers (``optim.vqvae.*``, ``optim.prior.*``):
steps ``[0, model.prior_start)`` train the VQ-VAE; from ``model.prior_start`` on, the VQ-VAE is
frozen and the PixelCNN prior trains on its codes (two stages, one run, one config). Samples
draw codes from the prior and decode them. ``test_bpd`` (8-bit) or ``test_nll`` (binarized) is
the paper's bound with a uniform prior, ``-log p(x | z_q) + h w log K``; ``*_with_prior`` uses
the trained prior instead; ``test_codebook_perplexity`` and ``test_codebook_usage`` describe the
test codes.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.nn.autoencoder import ConvDecoder, ConvEncoder, downsampled_sizes
from gen.train.ema import ema_from_config, update_ema
from gen.train.optim import make_optimizer, optim_for_part
from gen.train.state import TrainState, apply_gradients
from gen.train.task import Task
from gen.vae import quantizer as vq
from gen.vae.evaluation import active_units, importance_sampled
from gen.vae.likelihoods import LIKELIHOODS, Likelihood, make_likelihood
from gen.vae.models import LatentModel, two_layer_vae, vae
from gen.vae.networks import ACTIVATIONS
from gen.vae.objectives import dreg_gradients, elbo_loss, iwae_bound, kl_weight
from gen.vae.prior import PixelCNNPrior, code_log_prob, sample_codes

VAE_MODELS = ("vae", "iwae")
GRADIENTS = ("reparam", "dreg")
CODEBOOKS = ("ema", "loss")


def _positive_int(model: ml_collections.ConfigDict, key: str, default: int, what: str) -> int:
    value = model.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.{key} must be a positive integer ({what}), got {value!r}.")
    return value


def _dtype(model: ml_collections.ConfigDict):
    name = model.get("dtype", "float32")
    if name not in ("float32", "bfloat16"):
        raise ConfigError(f"model.dtype={name!r} is not float32 or bfloat16.")
    return jnp.bfloat16 if name == "bfloat16" else jnp.float32


def _num_classes(model: ml_collections.ConfigDict, spec: DataSpec) -> int | None:
    if not model.get("class_conditional", False):
        return None
    if not spec.num_classes:
        raise ConfigError("model.class_conditional needs labelled data; this dataset has none.")
    return spec.num_classes


def likelihood_for(config: ml_collections.ConfigDict, spec: DataSpec) -> Likelihood:
    """The decoder likelihood ``model.likelihood``, checked against the data and preprocessing.

    Vectors take ``gaussian`` or ``gaussian_fixed``; binarized images ``bernoulli``; 8-bit
    images (``data.scale='symmetric'``, ``data.dequantize='none'``) ``dmol``.
    """
    model, data = config.model, config.data
    binarize = data.get("binarize", "none")
    default = "gaussian" if spec.kind == "vector" else (
        "bernoulli" if binarize != "none" else "dmol")
    name = model.get("likelihood", default)
    if name not in LIKELIHOODS:
        raise ConfigError(f"model.likelihood={name!r} is not one of {', '.join(LIKELIHOODS)}.")
    if spec.kind == "vector" and name in ("bernoulli", "dmol"):
        raise ConfigError(
            f"model.likelihood={name!r} models images, but this dataset holds vectors of shape "
            f"{spec.shape}; use model.likelihood='gaussian' (e.g. the vae_toy2d config).")
    if spec.kind == "image" and name.startswith("gaussian"):
        raise ConfigError(
            f"model.likelihood={name!r} is the vector model's, but this dataset holds images of "
            f"shape {spec.shape}; use 'dmol' (8-bit pixels) or 'bernoulli' (binarized), e.g. the "
            "vae_digits or vae_mnist config.")
    if name == "bernoulli" and binarize == "none":
        raise ConfigError("model.likelihood='bernoulli' needs binarized pixels; set "
                          "data.binarize='dynamic' (or 'static'), or use model.likelihood='dmol'.")
    if name == "dmol":
        scale, dequantize = data.get("scale", "unit"), data.get("dequantize", "uniform")
        if binarize != "none" or dequantize != "none" or scale != "symmetric":
            raise ConfigError(
                "model.likelihood='dmol' models 8-bit pixels: set data.binarize='none', "
                "data.dequantize='none' and data.scale='symmetric' (got "
                f"binarize={binarize!r}, dequantize={dequantize!r}, scale={scale!r}).")
    std = float(model.get("decoder_std", 1.0))
    if name == "gaussian_fixed" and not std > 0:
        raise ConfigError(f"model.decoder_std must be positive, got {std}.")
    mixtures = model.get("num_mixtures", 10)
    if name == "dmol":
        mixtures = _positive_int(model, "num_mixtures", 10, "logistic components")
    return make_likelihood(name, spec.shape, std=std, num_mixtures=mixtures)


def make_model(config: ml_collections.ConfigDict, spec: DataSpec) -> LatentModel:
    """The :class:`LatentModel` that ``config.model`` describes, for ``spec``'s data."""
    model = config.model
    likelihood = likelihood_for(config, spec)
    latent_dim = _positive_int(model, "latent_dim", 0, "the size of z")
    latent_dim2 = model.get("latent_dim2", 0)
    if not isinstance(latent_dim2, int) or latent_dim2 < 0:
        raise ConfigError(f"model.latent_dim2 must be 0 (one stochastic layer) or the size of "
                          f"the second layer z2, got {latent_dim2!r}.")
    network = model.get("network", "mlp")
    if network not in ("mlp", "conv"):
        raise ConfigError(f"model.network={network!r} is not 'mlp' or 'conv'.")
    if network == "conv" and spec.kind != "image":
        raise ConfigError(f"model.network='conv' needs images; this dataset holds vectors of "
                          f"shape {spec.shape}; use model.network='mlp'.")
    activation = model.get("activation", "tanh")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation={activation!r} is not one of "
                          f"{', '.join(ACTIVATIONS)}.")
    hidden = tuple(model.get("hidden", (200, 200)))
    kwargs = dict(activation=activation, num_classes=_num_classes(model, spec),
                  dtype=_dtype(model))
    if latent_dim2:
        if network != "mlp":
            raise ConfigError("two stochastic layers (model.latent_dim2 > 0) use MLPs; set "
                              "model.network='mlp'.")
        return two_layer_vae(likelihood, (latent_dim, latent_dim2), hidden,
                             tuple(model.get("hidden2", (100, 100))), **kwargs)
    return vae(likelihood, latent_dim, network, hidden, channels=tuple(model.get(
        "channels", (32, 64))), num_res_blocks=model.get("num_res_blocks", 1), **kwargs)


def _eval_sizes(model: ml_collections.ConfigDict) -> tuple[int, int]:
    samples = _positive_int(model, "eval_samples", 1000, "importance samples K")
    chunk = min(_positive_int(model, "eval_chunk", 100, "samples drawn at once"), samples)
    if samples % chunk:
        raise ConfigError(f"model.eval_chunk={chunk} must divide model.eval_samples={samples}.")
    return samples, chunk


def _labels_for_sampling(key, num: int, labels, num_classes: int | None):
    if num_classes is None:
        return None
    if labels is not None:
        return jnp.asarray(labels, jnp.int32)
    return jax.random.randint(key, (num,), 0, num_classes)


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The :class:`Task` for ``config.model.name`` in ``vae``, ``iwae``, ``vqvae``."""
    name = config.model.get("name")
    if name in VAE_MODELS:
        return build_vae_task(config, spec)
    if name == "vqvae":
        return build_vqvae_task(config, spec)
    raise ConfigError(f"model.name={name!r} is not a model of gen.vae "
                      f"({', '.join((*VAE_MODELS, 'vqvae'))}).")


def build_vae_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The ``vae`` / ``iwae`` :class:`Task` (see the module docstring)."""
    cfg = config.model
    objective = "elbo" if cfg.name == "vae" else "iwae"
    k = _positive_int(cfg, "k", 1, "samples of z per example in training")
    gradient = cfg.get("gradient", "reparam")
    if gradient not in GRADIENTS:
        raise ConfigError(f"model.gradient={gradient!r} is not one of {', '.join(GRADIENTS)}.")
    if gradient == "dreg" and objective != "iwae":
        raise ConfigError("model.gradient='dreg' is the IWAE encoder gradient; use "
                          "model.name='iwae'.")
    beta = float(cfg.get("beta", 1.0))
    free_bits = float(cfg.get("free_bits", 0.0))
    warmup = int(cfg.get("kl_warmup_steps", 0))
    groups = cfg.get("free_bits_groups", 1)
    if objective == "iwae" and (beta != 1.0 or free_bits > 0 or warmup > 0):
        raise ConfigError("model.beta, model.free_bits and model.kl_warmup_steps shape the ELBO; "
                          "use model.name='vae', or leave them at 1, 0 and 0 for 'iwae'.")
    if beta < 0 or free_bits < 0 or warmup < 0:
        raise ConfigError("model.beta, model.free_bits and model.kl_warmup_steps must be >= 0.")
    model = make_model(config, spec)
    total_latent = sum(model.latent_dims)
    if not isinstance(groups, int) or groups < 1 or total_latent % groups:
        raise ConfigError(f"model.free_bits_groups={groups!r} must divide the {total_latent} "
                          "latent dimensions.")
    eval_samples, eval_chunk = _eval_sizes(cfg)
    num_classes = _num_classes(cfg, spec)
    tx = make_optimizer(config.optim, config.num_steps)
    ema = ema_from_config(config)
    dmol = model.likelihood.name == "dmol"
    bits = spec.dim * math.log(2.0)

    def labels(batch: dict):
        return batch["y"] if num_classes is not None else None

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_params, k_run = jax.random.split(key)
        y = labels(batch)
        params = model.init(k_params, batch["x"][:1], None if y is None else y[:1])
        return TrainState.create(params, tx, k_run, ema=ema)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        x, y = batch["x"], labels(batch)
        eps = model.noise(key, k, x.shape[0])
        if objective == "elbo":
            weight = kl_weight(state.step, beta, warmup)

            def loss_fn(params):
                rec, kl = model.elbo_terms(params, x, y, eps)
                return elbo_loss(rec, kl, weight, free_bits, groups)

            (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            metrics = {"loss": loss, **parts, "kl_weight": weight}
        elif gradient == "dreg":
            enc, dec = state.params["encoder"], state.params["decoder"]
            bound, g_dec, g_enc = dreg_gradients(
                lambda phi, e: model.sample_q(phi, x, y, e)[0],
                lambda theta, z: model.log_joint(theta, x, y, z) - model.log_q(enc, x, y, z),
                enc, dec, eps)
            grads = jax.tree.map(jnp.negative, {"encoder": g_enc, "decoder": g_dec})
            metrics = {"loss": -bound, "iwae_bound": bound}
        else:
            def loss_fn(params):
                return -jnp.mean(iwae_bound(model.log_weights(params, x, y, eps)))

            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            metrics = {"loss": loss, "iwae_bound": -loss}
        return update_ema(apply_gradients(state, grads, tx), ema), metrics

    def estimate(params, x, y, key):
        def log_weights(key, n):
            eps = model.noise(key, n, x.shape[0])
            z, means = model.sample_q(params["encoder"], x, y, eps)
            log_w = (model.log_joint(params["decoder"], x, y, z)
                     - model.log_q(params["encoder"], x, y, z))
            return log_w, means

        return importance_sampled(log_weights, key, eval_samples, eval_chunk)

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        result = estimate(params, batch["x"], labels(batch), key)
        out = {"posterior_mean": result.posterior_mean,
               "posterior_mean_sq": jnp.square(result.posterior_mean)}
        if dmol:
            return {"bpd": -result.log_px / bits, "nelbo_bpd": -result.elbo / bits, **out}
        return {"nll": -result.log_px, "nelbo": -result.elbo, **out}

    def summarize(means: dict[str, np.ndarray]) -> dict[str, float]:
        return {"active_units": active_units(means["posterior_mean"],
                                             means["posterior_mean_sq"])}

    def sample(params, key: jax.Array, num: int, labels=None) -> jax.Array:
        k_y, k_x = jax.random.split(key)
        y = _labels_for_sampling(k_y, num, labels, num_classes)
        return model.sample(params["decoder"], k_x, num, y).reshape(num, *spec.shape)

    def log_prob(params, x: jax.Array) -> jax.Array:
        return estimate(params, x, None, jax.random.PRNGKey(0)).log_px

    return Task(init, step, evaluate, sample, None if num_classes else log_prob,
                summarize=summarize)


class VQEncoder(nn.Module):
    """Images ``(N, H, W, C) -> (N, h, w, code_dim)``: ``ConvEncoder`` and a 1x1 convolution."""

    code_dim: int
    channels: tuple[int, ...]
    num_res_blocks: int
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = ConvEncoder(self.channels, self.num_res_blocks, dtype=self.dtype, name="conv")(x)
        return nn.Conv(self.code_dim, (1, 1), dtype=self.dtype, name="pre_quant")(h).astype(
            jnp.float32)


def build_vqvae_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The ``vqvae`` :class:`Task` (see the module docstring)."""
    cfg = config.model
    if spec.kind != "image":
        raise ConfigError(f"model.name='vqvae' needs images; this dataset holds vectors of shape "
                          f"{spec.shape}; use model.name='vae' for vectors.")
    likelihood = likelihood_for(config, spec)
    K = _positive_int(cfg, "num_codes", 512, "the codebook size")
    D = _positive_int(cfg, "code_dim", 64, "the size of each code")
    channels = tuple(cfg.get("channels", (64, 128)))
    if not channels:
        raise ConfigError("model.channels must name at least one downsampling.")
    codebook_mode = cfg.get("codebook", "ema")
    if codebook_mode not in CODEBOOKS:
        raise ConfigError(f"model.codebook={codebook_mode!r} is not 'ema' or 'loss'.")
    decay = float(cfg.get("codebook_decay", 0.99))
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"model.codebook_decay must be in [0, 1), got {decay}.")
    commitment = float(cfg.get("commitment", 0.25))
    restart = float(cfg.get("restart_threshold", 0.03))
    prior_start = cfg.get("prior_start", 0)
    if not isinstance(prior_start, int) or prior_start < 0:
        raise ConfigError(f"model.prior_start must be a step >= 0, got {prior_start!r}.")
    num_classes = _num_classes(cfg, spec)
    dtype = _dtype(cfg)
    H, W, _ = spec.shape
    grid = (downsampled_sizes(H, len(channels))[-1], downsampled_sizes(W, len(channels))[-1])
    positions = grid[0] * grid[1]
    encoder = VQEncoder(D, channels, cfg.get("num_res_blocks", 2), dtype)
    decoder = ConvDecoder(likelihood.param_shape, channels, cfg.get("num_res_blocks", 2),
                          dtype=dtype)
    prior = PixelCNNPrior(K, cfg.get("prior_features", 64), cfg.get("prior_layers", 4),
                          num_classes, dtype)
    parts = ("vqvae", "prior")
    txs = {p: make_optimizer(optim_for_part(config.optim, p), config.num_steps) for p in parts}
    ema = ema_from_config(config, part="vqvae")
    ema_codebook = codebook_mode == "ema"
    dmol = likelihood.name == "dmol"
    bits = spec.dim * math.log(2.0)

    def codebook_of(params, model_state) -> jax.Array:
        return (model_state["codebook"]["embedding"] if ema_codebook
                else params["vqvae"]["codebook"])

    def labels(batch: dict):
        return batch["y"] if num_classes is not None else None

    def encode(vq_params, codebook, x):
        z_e = encoder.apply({"params": vq_params["encoder"]}, x)
        idx = vq.nearest_code(z_e, codebook)
        return z_e, idx, codebook[idx]

    def init(key: jax.Array, batch: dict) -> TrainState:
        k_enc, k_dec, k_prior, k_code, k_run = jax.random.split(key, 5)
        x = batch["x"]
        enc = encoder.init(k_enc, x[:1])["params"]
        z_e = encoder.apply({"params": enc}, x)
        dec = decoder.init(k_dec, z_e[:1])["params"]
        codes = jnp.zeros((1, *grid), jnp.int32)
        y = labels(batch)
        pri = prior.init(k_prior, codes, None if y is None else y[:1])["params"]
        state = vq.init_codebook(k_code, z_e.reshape(-1, D), K)
        vq_params = {"encoder": enc, "decoder": dec}
        if not ema_codebook:
            vq_params["codebook"] = state.embedding
        return TrainState.create({"vqvae": vq_params, "prior": pri}, txs, k_run, ema=ema,
                                 model_state={"codebook": state._asdict()})

    def vq_step(state: TrainState, x, y, key) -> tuple[TrainState, dict]:
        del y
        cb = vq.CodebookState(**state.model_state["codebook"])

        def loss_fn(vq_params):
            codebook = cb.embedding if ema_codebook else vq_params["codebook"]
            z_e, idx, z_q = encode(vq_params, codebook, x)
            out = decoder.apply({"params": vq_params["decoder"]}, vq.straight_through(z_e, z_q))
            nll = -jnp.mean(likelihood.log_prob(out, x)) / spec.dim
            commit, codebook_loss = vq.vq_losses(z_e, z_q)
            loss = nll + commitment * commit + (0.0 if ema_codebook else codebook_loss)
            return loss, (z_e, idx, nll, commit)

        (loss, (z_e, idx, nll, commit)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params["vqvae"])
        state = apply_gradients(state, grads, txs, part="vqvae")
        z_flat, idx_flat = jax.lax.stop_gradient(z_e.reshape(-1, D)), idx.reshape(-1)
        if not ema_codebook:
            cb = cb._replace(embedding=state.params["vqvae"]["codebook"])
        cb = vq.ema_update(cb, z_flat, idx_flat, decay, update_embedding=ema_codebook)
        restarted = jnp.zeros((), jnp.int32)
        if restart > 0:
            cb, restarted = vq.restart_dead_codes(key, cb, z_flat, restart)
        if not ema_codebook:
            state = state.replace(params={**state.params, "vqvae": {
                **state.params["vqvae"], "codebook": cb.embedding}})
        state = update_ema(state.replace(model_state={"codebook": cb._asdict()}), ema)
        return state, {"loss": loss, "nll_per_dim": nll, "commitment": commit,
                       "perplexity": vq.perplexity(vq.code_frequencies(idx, K)),
                       "restarted_codes": restarted.astype(jnp.float32),
                       "prior_nll_per_code": jnp.zeros(()), "stage": jnp.zeros(())}

    def prior_step(state: TrainState, x, y, key) -> tuple[TrainState, dict]:
        del key
        codebook = codebook_of(state.params, state.model_state)
        _, codes, _ = encode(state.params["vqvae"], codebook, x)

        def loss_fn(prior_params):
            logits = prior.apply({"params": prior_params}, codes, y)
            return -jnp.mean(code_log_prob(logits, codes)) / positions

        loss, grads = jax.value_and_grad(loss_fn)(state.params["prior"])
        state = apply_gradients(state, grads, txs, part="prior")
        zero = jnp.zeros(())
        return state, {"loss": loss, "nll_per_dim": zero, "commitment": zero,
                       "perplexity": vq.perplexity(vq.code_frequencies(codes, K)),
                       "restarted_codes": zero, "prior_nll_per_code": loss,
                       "stage": jnp.ones(())}

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        x, y = batch["x"], labels(batch)
        first_stage = state.step < prior_start

        def branch(state, x, y, key):  # runs one stage
            return jax.lax.cond(first_stage, vq_step, prior_step, state, x, y, key)

        def both(state, x, y, key):  # runs both stages and keeps one: the same result
            return jax.tree.map(lambda a, b: jnp.where(first_stage, a, b),
                                vq_step(state, x, y, key), prior_step(state, x, y, key))

        # XLA's CPU backend runs the weight-gradient convolutions inside a conditional about
        # 60x slower than at the top level, so on CPU both stages run and one is kept.
        return jax.lax.platform_dependent(state, x, y, key, cpu=both, default=branch)

    def eval_params(state: TrainState) -> dict:
        return {"params": state.eval_params(), "model_state": state.model_state}

    def evaluate(params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        del key
        p, x, y = params["params"], batch["x"], labels(batch)
        _, codes, z_q = encode(p["vqvae"], codebook_of(p, params["model_state"]), x)
        out = decoder.apply({"params": p["vqvae"]["decoder"]}, z_q)
        rec = -likelihood.log_prob(out, x)
        prior_lp = code_log_prob(prior.apply({"params": p["prior"]}, codes, y), codes)
        uniform = rec + positions * math.log(K)
        freqs = jnp.mean(jax.nn.one_hot(codes.reshape(x.shape[0], -1), K), axis=1)
        if dmol:
            return {"bpd": uniform / bits, "bpd_with_prior": (rec - prior_lp) / bits,
                    "reconstruction_bpd": rec / bits, "code_frequencies": freqs}
        return {"nll": uniform, "nll_with_prior": rec - prior_lp, "reconstruction_nll": rec,
                "code_frequencies": freqs}

    def summarize(means: dict[str, np.ndarray]) -> dict[str, float]:
        freqs = np.asarray(means["code_frequencies"], np.float64)
        p = freqs / freqs.sum()
        nz = p[p > 0]
        return {"codebook_perplexity": float(np.exp(-np.sum(nz * np.log(nz)))),
                "codebook_usage": float(np.mean(p > 0))}

    def sample(params, key: jax.Array, num: int, labels=None) -> jax.Array:
        k_y, k_codes, k_x = jax.random.split(key, 3)
        p = params["params"]
        y = _labels_for_sampling(k_y, num, labels, num_classes)
        codes = sample_codes(lambda c: prior.apply({"params": p["prior"]}, c, y), k_codes, num,
                             grid)
        z_q = codebook_of(p, params["model_state"])[codes]
        out = decoder.apply({"params": p["vqvae"]["decoder"]}, z_q)
        if likelihood.name == "bernoulli":
            return likelihood.mean(out)
        return likelihood.sample(k_x, out)

    return Task(init, step, evaluate, sample, None, eval_params=eval_params,
                summarize=summarize)
