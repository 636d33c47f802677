"""DDPM (Ho et al. 2020) on scikit-learn's 8x8 digits: a small UNet, eps loss, linear schedule.

Command:
    python -m experiments.run --config experiments/configs/ddpm_digits.py --workdir /tmp/dd
    python -m experiments.sample --workdir /tmp/dd --num 64 --out /tmp/dd.npy

Data: 1,437 training and 360 test digits (stratified split), scaled to [-1, 1] without
dequantization, as in Ho et al. `test_bpd` is the full discrete VLB over all T = 1000 steps with
the discretized Gaussian decoder (Ho et al. Sec. 3.3), in bits per 8-bit dimension, on
`num_eval_examples` test digits; pictures come from 50 DDIM steps with the EMA params.
Hardware and runtime: about 15 minutes on a 2-core CPU (869 s measured: 6 steps/s, plus the
VLB).
Expected result: recognisable digits in samples/*.png and `test_bpd` 4.91 (measured: the VLB on
the first 120 test digits after 5,000 steps).
Source: no published number for this dataset.
"""

import ml_collections

from experiments.configs import _data, _ddpm


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 5000
    config.batch_size = 128
    config.eval_batch_size = 120
    config.log_every = 250
    config.checkpoint_every = 1000
    config.eval_every = 5000
    config.keep_checkpoints = 2
    config.ema_decay = 0.999
    config.num_samples = 64
    config.num_eval_examples = 120

    config.data = _data.digits(scale="symmetric", dequantize="none")

    config.model = ml_collections.ConfigDict()
    config.model.name = "ddpm"
    config.model.ch = 32
    config.model.ch_mult = (1, 2)
    config.model.num_res_blocks = 2
    config.model.attn_resolutions = (4,)
    config.model.num_groups = 8
    config.model.dropout = 0.1
    _ddpm.add_diffusion(config.model, schedule="linear", num_steps=1000, prediction="eps")
    config.model.class_conditional = False
    config.model.guidance = False

    config.sampler = ml_collections.ConfigDict()
    config.sampler.name = "ddim"
    config.sampler.num_steps = 50
    config.sampler.spacing = "leading"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 200
    config.optim.schedule = "constant"
    config.optim.grad_clip = 1.0
    return config
