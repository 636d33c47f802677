"""Glow (Kingma & Dhariwal 2018) on scikit-learn's 8x8 digits, in bits/dim.

Command:
    python -m experiments.run --config experiments/configs/glow_digits.py --workdir /tmp/gd
    python -m experiments.sample --workdir /tmp/gd --num 64 --out /tmp/gd.npy

Data: 1,437 training and 360 test digits (stratified split), uniformly dequantized and scaled to
[0, 1]. Each step: ActNorm (initialized from data), invertible 1x1 conv, affine coupling.
`test_bpd` is in 8-bit pixel space: the 17 grey levels of the digits are stored as uint8.
Runtime: measured 0.45 steps/s for realnvp_digits on a 2-core CPU (XLA's CPU convolutions),
so the default 4,000 steps take about 2.5 hours there; one GPU is the practical choice.
Glow's own rate is not measured yet.
Expected result: `test_bpd` in eval.json (not yet measured); there is no
published number for this dataset.
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
    config.model.hidden_channels = 32
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
