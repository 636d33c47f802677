"""Shared Flax Linen networks: MLP, MADE, conv ResNet, conv encoder/decoder, UNet, denoisers,
embeddings, attention; analytic FLOP counts (``count_flops``, ``unet_flops``).

Outside the module definitions, code sees only ``apply(params, ...)`` over explicit params.
"""

from gen.nn.attention import AttentionBlock
from gen.nn.autoencoder import ConvDecoder, ConvEncoder
from gen.nn.denoiser import MLPDenoiser
from gen.nn.embeddings import fourier_features, timestep_embedding
from gen.nn.flops import Flops, UNetFlops, count_flops, unet_flops
from gen.nn.made import MADE
from gen.nn.mlp import MLP
from gen.nn.resnet import ConvResNet
from gen.nn.unet import ResBlock, UNet, cifar10_config, count_params

__all__ = [
    "MADE",
    "MLP",
    "AttentionBlock",
    "ConvDecoder",
    "ConvEncoder",
    "ConvResNet",
    "Flops",
    "MLPDenoiser",
    "ResBlock",
    "UNet",
    "UNetFlops",
    "cifar10_config",
    "count_flops",
    "count_params",
    "fourier_features",
    "timestep_embedding",
    "unet_flops",
]
