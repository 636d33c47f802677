"""VQ-VAE on scikit-learn's 8x8 digits, with a PixelCNN prior over its 4x4 code grid.

Two stages in one run: steps 0 to model.prior_start train the VQ-VAE (EMA codebook, dead codes
restarted), then the VQ-VAE is frozen and the prior trains on its codes; samples are drawn
from the prior and decoded.

Command:
    python -m experiments.run --config experiments/configs/vqvae_digits.py --workdir /tmp/vqd
    python -m experiments.sample --workdir /tmp/vqd --num 64 --out /tmp/vqd.npy

Model: one stride-2 4x4 convolution (64 channels) and two residual blocks to a 4x4 grid of
16-dimensional vectors, 64 codes; the decoder mirrors it to a 5-component discretized logistic
mixture. The prior is small (16 features, 2 blocks per stack): the 1,437 training digits give
only 23k codes, and a prior of 64 features and 4 blocks fell to 0.7 nats per code on them while
rising to 12.6 on the test codes.

Hardware and runtime: 251 s measured on this project's 2-core CPU (3,500 steps at batch 64; on
a CPU both stages are computed at every step and one is kept, see gen/vae/training.py).
Expected result (measured): `test_bpd` 4.53 bits/dim (the bound with a uniform prior over the
codes, van den Oord et al.'s convention), `test_bpd_with_prior` 4.25, `test_reconstruction_bpd`
3.03, `test_codebook_perplexity` 54.5 of 64 codes, `test_codebook_usage` 1.0.
Source: no published number for this dataset.
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 3500
    config.batch_size = 64
    config.eval_batch_size = 120
    config.log_every = 100
    config.checkpoint_every = 1000
    config.eval_every = 1000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 64

    config.data = _data.digits(scale="symmetric", dequantize="none")

    config.model = ml_collections.ConfigDict()
    config.model.name = "vqvae"
    config.model.class_conditional = False
    config.model.channels = (64,)
    config.model.num_res_blocks = 2
    config.model.num_codes = 64
    config.model.code_dim = 16
    config.model.codebook = "ema"  # or "loss": the codebook loss instead of moving averages
    config.model.codebook_decay = 0.99
    config.model.commitment = 0.25
    config.model.restart_threshold = 0.03
    config.model.likelihood = "dmol"
    config.model.num_mixtures = 5
    config.model.prior_start = 2000
    # a small prior: the 1,437 training digits give 23k codes, and a larger one overfits them
    # (64 features, 4 layers: 0.7 nats per code on the training codes, 12.6 on the test codes)
    config.model.prior_features = 16
    config.model.prior_layers = 2

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 100
    config.optim.schedule = "constant"
    config.optim.grad_clip = 10.0
    config.optim.vqvae = ml_collections.ConfigDict()
    config.optim.prior = ml_collections.ConfigDict()
    return config
