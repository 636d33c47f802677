"""Shared Flax Linen networks: MLP, MADE, conv ResNet, conv encoder/decoder, UNet, denoisers,
embeddings, attention.

Outside the module definitions, code sees only ``apply(params, ...)`` over explicit params.
"""

from gen.nn.attention import AttentionBlock
from gen.nn.autoencoder import ConvDecoder, ConvEncoder
from gen.nn.denoiser import MLPDenoiser
from gen.nn.embeddings import fourier_features, timestep_embedding
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
    "MLPDenoiser",
    "ResBlock",
    "UNet",
    "cifar10_config",
    "count_params",
    "fourier_features",
    "timestep_embedding",
]
