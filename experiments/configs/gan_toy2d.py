"""An MLP GAN on 2-D toy data: all 25 modes of PacGAN's grid of tight Gaussians.

PacGAN's setting (Lin et al. 2018, the 2-D grid: 25 Gaussians with std 0.05 on {-4,...,4}^2,
a 2-D Gaussian latent, a generator of four ReLU layers of 400 units with BatchNorm, the
discriminator seeing 4 packed samples, batch 100, Adam), trained for minutes instead of PacGAN's
400 epochs. Two changes make that possible: the discriminator reads each packed sample through
128 learned Fourier features (an MLP on raw 2-D coordinates learns the sharp 25-bump function
slowly, which leaves the generator's samples blurred between modes), and R1 (weight 1) keeps
that sharper discriminator from overpowering the generator; Adam runs at 5e-4, betas (0.5,
0.999), decayed linearly to 0 over the 45k steps (with a constant rate the same run ends at
24 modes and 78% high quality after 30k steps: the decay is what settles the samples onto
the modes). Samples come from the generator's EMA (decay 0.999 after 1,000 steps). `eval.json`
reports `modes_captured` and `high_quality` on 2,500 samples, PacGAN's protocol.

Command:
    python -m experiments.run --config experiments/configs/gan_toy2d.py --workdir /tmp/gan_toy
Other mixtures and your own data: --config.data.name=2rings (16 modes), or
    --config.data.source=npy --config.data.path=points.npy --config.eval.metrics='()'
(mode counting needs known modes; any (N, 2) float array trains).

Hardware and runtime: 643 s on a 2-core CPU shared with other jobs (measured: 45,000 steps at
about 70 steps/s, nine evaluations included).
Expected result: `modes_captured` 25 of 25 and `high_quality` 0.926 (measured, seed 0; along
the run: 10 modes / 21% at 5k steps, 25 / 84% at 25k, 25 / 90% at 35k;
experiments/results/gan_toy2d_25gaussians.png). GAN runs vary between seeds.
Source: Lin et al. 2018 (PacGAN), Table 2: PacGAN4 captures 24.8 of 25 modes with 93.6%
high-quality samples (the mean over 10 runs).
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 45_000
    config.batch_size = 100
    config.log_every = 1000
    config.checkpoint_every = 5000
    config.eval_every = 5000
    config.keep_checkpoints = 3
    config.num_samples = 2500
    config.ema_decay = 0.999
    config.ema_start = 1000

    config.data = _data.toy2d("25gaussians", num_test=2500, npy_paths=False)

    config.model = ml_collections.ConfigDict()
    config.model.name = "mlp_gan"
    config.model.loss = "non_saturating"
    config.model.penalty = "r1"
    config.model.penalty_weight = 1.0
    config.model.n_dis = 1
    config.model.packing = 4
    config.model.latent_dim = 2
    config.model.g_hidden = (400, 400, 400, 400)
    config.model.g_batchnorm = True
    config.model.d_hidden = (200, 200, 200)
    config.model.d_activation = "leaky_relu"
    config.model.d_fourier_features = 128
    config.model.d_fourier_scale = 0.25
    config.model.spectral_norm = False

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 5e-4
    config.optim.b1 = 0.5
    config.optim.b2 = 0.999
    config.optim.schedule = "linear"

    config.eval = ml_collections.ConfigDict()
    config.eval.metrics = ("mode_coverage",)
    config.eval.num_samples = 2500
    return config
