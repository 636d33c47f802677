"""VQ-VAE on CIFAR-10 in van den Oord et al. (2017)'s setting, for a GPU, from TFDS.

Command (prepares CIFAR-10 with TFDS on first use; needs network access then):
    python -m experiments.run --config experiments/configs/vqvae_cifar10.py --workdir /tmp/vq10
    python -m experiments.sample --workdir /tmp/vq10 --num 64 --out /tmp/vq10.npy

Model (the paper's section 4.1): an encoder of two stride-2 4x4 convolutions and two residual
blocks (ReLU, 3x3 conv, ReLU, 1x1 conv), 256 hidden units, to an 8x8 grid of 64-dimensional
vectors quantized to K = 512 codes (EMA codebook, decay 0.99, commitment 0.25); the decoder
mirrors it. Adam 2e-4, batch 128, 250k steps; then the VQ-VAE is frozen and a PixelCNN prior
(128 features, 8 blocks per stack) trains 100k steps on its codes. The paper does not state its
output distribution; this config uses a 10-component discretized logistic mixture.

Hardware and runtime: not run here: this project's machine is a 2-core CPU, where one training
step of this config takes about 11 s (measured), so 350k steps would take about 45 days. On one
modern GPU expect hours (not measured).
Expected result: `test_bpd` (the bound with a uniform prior over the codes, the paper's
convention: -log p(x | z_q) + 64 log 512 nats) about 4.67 bits/dim; `test_bpd_with_prior` is
lower once the prior has trained.
Source: van den Oord et al. 2017, "Neural Discrete Representation Learning", section 4.1
(VQ-VAE 4.67 bits/dim on CIFAR-10, a lower bound; VAE 4.51, VIMCO 5.14).
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 350_000
    config.batch_size = 128
    config.eval_batch_size = 500
    config.num_eval_examples = 10_000
    config.log_every = 100
    config.checkpoint_every = 5000
    config.eval_every = 50_000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 64

    config.data = _data.cifar10()

    config.model = ml_collections.ConfigDict()
    config.model.name = "vqvae"
    config.model.class_conditional = False
    config.model.channels = (256, 256)
    config.model.num_res_blocks = 2
    config.model.num_codes = 512
    config.model.code_dim = 64
    config.model.codebook = "ema"
    config.model.codebook_decay = 0.99
    config.model.commitment = 0.25
    config.model.restart_threshold = 0.03
    config.model.likelihood = "dmol"
    config.model.num_mixtures = 10
    config.model.prior_start = 250_000
    config.model.prior_features = 128
    config.model.prior_layers = 8
    config.model.dtype = "float32"  # "bfloat16" on accelerators

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 0
    config.optim.schedule = "constant"
    config.optim.grad_clip = 0.0
    config.optim.vqvae = ml_collections.ConfigDict()
    config.optim.prior = ml_collections.ConfigDict({"learning_rate": 3e-4})
    return config
