"""gen: generative models in JAX/Flax (flows, diffusion and flow matching, VAEs, GANs)."""

__version__ = "0.1.0"
