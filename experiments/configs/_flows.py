"""What the flow configs share, written once: each config imports a base from here, sets its own
sizes and keeps its own docstring (command, runtime, expected result). The data sections come
from ``_data``, which the other configs share.

Not a config itself (no ``get_config``): the leading underscore keeps it out of the config lists
of ``gen.config`` and ``tests/test_configs.py``.
"""

import ml_collections

from experiments.configs import _data


def _run(config: ml_collections.ConfigDict, num_steps: int, batch_size: int, log_every: int,
         checkpoint_every: int, eval_every: int, keep_checkpoints: int,
         num_samples: int) -> None:
    config.seed = 0
    config.num_steps = num_steps
    config.batch_size = batch_size
    config.log_every = log_every
    config.checkpoint_every = checkpoint_every
    config.eval_every = eval_every
    config.keep_checkpoints = keep_checkpoints
    config.ema_decay = 0.0
    config.num_samples = num_samples


def _optim(warmup_steps: int, grad_clip: float) -> ml_collections.ConfigDict:
    optim = ml_collections.ConfigDict()
    optim.name = "adam"
    optim.learning_rate = 1e-3
    optim.warmup_steps = warmup_steps
    optim.schedule = "cosine"
    optim.grad_clip = grad_clip
    return optim


def toy2d_flow(name: str, num_layers: int) -> ml_collections.ConfigDict:
    """A vector flow (``model.name`` in gen.flows.training.VECTOR_MODELS) on 2-D toy data."""
    config = ml_collections.ConfigDict()
    _run(config, num_steps=6000, batch_size=512, log_every=500, checkpoint_every=2000,
         eval_every=3000, keep_checkpoints=2, num_samples=2000)

    config.data = _data.toy2d("8gaussians", num_train=200_000)

    config.model = ml_collections.ConfigDict()
    config.model.name = name
    config.model.num_layers = num_layers
    config.model.hidden = (128, 128)

    config.optim = _optim(warmup_steps=200, grad_clip=5.0)
    return config


def _image_model(name: str, num_steps: int, hidden_channels: int,
                 num_blocks: int) -> ml_collections.ConfigDict:
    model = ml_collections.ConfigDict()
    model.name = name
    model.num_scales = 2
    model.num_steps = num_steps
    model.hidden_channels = hidden_channels
    model.num_blocks = num_blocks
    model.num_groups = 8
    model.logit = 0.05
    # "uniform": the pipeline's noise; "variational": a Flow++ q(u | x) trained with the flow
    # (then set data.dequantize="none"; the deq_* keys size it).
    model.dequantizer = "uniform"
    model.deq_steps = 2
    model.deq_hidden_channels = 16
    model.deq_eval_samples = 1
    return model


def digits_image_flow(name: str, num_steps: int, eval_every: int,
                      model_steps: int) -> ml_collections.ConfigDict:
    """An image flow (``"glow"`` or ``"realnvp_image"``) on scikit-learn's 8x8 digits, CPU-sized:
    ``num_steps`` training steps, ``model_steps`` flow steps per scale."""
    config = ml_collections.ConfigDict()
    _run(config, num_steps=num_steps, batch_size=64, log_every=200, checkpoint_every=1000,
         eval_every=eval_every, keep_checkpoints=2, num_samples=64)

    config.data = _data.digits(scale="unit", dequantize="uniform")
    config.model = _image_model(name, model_steps, hidden_channels=16, num_blocks=1)
    config.optim = _optim(warmup_steps=200, grad_clip=50.0)
    return config


def mnist_image_flow(name: str, model_steps: int, hidden_channels: int,
                     num_blocks: int) -> ml_collections.ConfigDict:
    """An image flow (``"glow"`` or ``"realnvp_image"``) on MNIST at the papers' scale."""
    config = ml_collections.ConfigDict()
    _run(config, num_steps=100_000, batch_size=64, log_every=100, checkpoint_every=2000,
         eval_every=5000, keep_checkpoints=3, num_samples=64)
    config.eval_batch_size = 200

    config.data = _data.mnist(scale="unit", dequantize="uniform")
    config.model = _image_model(name, model_steps, hidden_channels, num_blocks)
    config.optim = _optim(warmup_steps=500, grad_clip=100.0)
    return config
