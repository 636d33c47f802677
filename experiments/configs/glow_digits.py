"""Glow (Kingma & Dhariwal 2018) on scikit-learn's 8x8 digits, in bits/dim.

Data: 1,437 training and 360 test digits (stratified split), uniformly dequantized and scaled to
[0, 1]. Each step: ActNorm (initialized from data), invertible 1x1 conv, affine coupling.
`test_bpd` is in 8-bit pixel space: the 17 grey levels of the digits are stored as uint8.

Command:
    python -m experiments.run --config experiments/configs/glow_digits.py --workdir /tmp/gd
    python -m experiments.sample --workdir /tmp/gd --num 64 --out /tmp/gd.npy

Hardware and runtime: about 90 s on a 2-core CPU (2,000 steps at 27 steps/s; 2 scales x 4
steps, a conditioner 16 channels wide with one residual block, batch 64).
Expected result: `test_bpd` 5.46 on the 360 test digits (measured; 5.49 at step 1,000). Wider
or deeper Glows overfit the 1,437 training digits: 8 steps per scale and 32 channels went from
5.84 bits/dim at step 2,000 to 7.71 at step 4,000 while the training loss kept falling.
Source: no published number for this dataset.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 2000
    config.batch_size = 64
    config.log_every = 200
    config.checkpoint_every = 1000
    config.eval_every = 1000
    config.keep_checkpoints = 2
    config.ema_decay = 0.0
    config.num_samples = 64

    config.data = ml_collections.ConfigDict()
    config.data.source = "digits"
    config.data.scale = "unit"
    config.data.dequantize = "uniform"

    config.model = ml_collections.ConfigDict()
    config.model.name = "glow"
    config.model.num_scales = 2
    config.model.num_steps = 4
    config.model.hidden_channels = 16
    config.model.num_blocks = 1
    config.model.num_groups = 8
    config.model.logit = 0.05
    # "uniform": the pipeline's noise; "variational": a Flow++ q(u | x) trained with the flow
    # (then set data.dequantize="none"; the deq_* keys size it).
    config.model.dequantizer = "uniform"
    config.model.deq_steps = 2
    config.model.deq_hidden_channels = 16
    config.model.deq_eval_samples = 1

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 200
    config.optim.schedule = "cosine"
    config.optim.grad_clip = 50.0
    return config
