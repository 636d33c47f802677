"""An MLP GAN on 2-D toy data: all 25 modes of PacGAN's grid of tight Gaussians.

PLACEHOLDER

Command:
    python -m experiments.run --config experiments/configs/gan_toy2d.py --workdir /tmp/gan_toy

Hardware and runtime: TBD 1 s on a 2-core CPU.
Expected result: TBD 25.
Source: Lin et al. 2018 (PacGAN), Table 2.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 20_000
    config.batch_size = 100
    config.log_every = 500
    config.checkpoint_every = 5000
    config.eval_every = 5000
    config.keep_checkpoints = 3
    config.num_samples = 2500
    config.ema_decay = 0.999
    config.ema_start = 1000

    config.data = ml_collections.ConfigDict()
    config.data.source = "toy2d"
    config.data.name = "25gaussians"
    config.data.num_train = 100_000
    config.data.num_test = 2500

    config.model = ml_collections.ConfigDict()
    config.model.name = "mlp_gan"
    config.model.loss = "non_saturating"
    config.model.penalty = "none"
    config.model.penalty_weight = 0.0
    config.model.n_dis = 1
    config.model.packing = 4
    config.model.latent_dim = 2
    config.model.g_hidden = (400, 400, 400, 400)
    config.model.g_batchnorm = True
    config.model.d_hidden = (200, 200, 200)
    config.model.d_activation = "maxout"
    config.model.maxout_pieces = 5
    config.model.spectral_norm = False

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-4
    config.optim.b1 = 0.8
    config.optim.b2 = 0.999

    config.eval = ml_collections.ConfigDict()
    config.eval.metrics = ("mode_coverage",)
    config.eval.num_samples = 2500
    return config
