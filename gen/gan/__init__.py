"""The GAN family: losses, penalties, spectral norm, DiffAugment, packing, conditioning,
architectures and the train step (``gen.gan.training.build_task``).

    from gen import gan

    out = gan.losses.hinge(d_real, d_fake)           # GANLoss(discriminator, generator)
    gp = gan.penalties.wgan_gp(critic, real, fake, key)
    x = gan.diff_augment(images, key, "color,translation,cutout")

Every loss is one function of the discriminator's outputs on real and generated data that
returns both players' losses (compare_gan's shape); ``model.loss`` and ``model.penalty`` pick
them by name in a config.
"""

from gen.gan import losses, penalties
from gen.gan.conditional import ConditionalBatchNorm, Projection
from gen.gan.dcgan import DCGANDiscriminator, DCGANGenerator
from gen.gan.diffaugment import diff_augment
from gen.gan.losses import LOSSES, GANLoss, clip_weights, get_loss
from gen.gan.mlp import MLPDiscriminator, MLPGenerator
from gen.gan.packing import pack
from gen.gan.penalties import PENALTIES, get_penalty
from gen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from gen.gan.spectral_norm import SNConv, SNDense, SNEmbed, power_iteration, spectral_normalize

__all__ = [
    "LOSSES",
    "PENALTIES",
    "ConditionalBatchNorm",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GANLoss",
    "MLPDiscriminator",
    "MLPGenerator",
    "Projection",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "SNConv",
    "SNDense",
    "SNEmbed",
    "clip_weights",
    "diff_augment",
    "get_loss",
    "get_penalty",
    "losses",
    "pack",
    "penalties",
    "power_iteration",
    "spectral_normalize",
]
