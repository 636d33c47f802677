"""DDPM on CIFAR-10 (Ho et al. 2020), the paper's configuration, from TFDS.

Model: the 35.7M-parameter UNet (ch 128, multipliers 1,2,2,2, two ResBlocks per resolution,
self-attention at 16x16, dropout 0.1), linear betas 1e-4 to 0.02 over T = 1000, eps loss,
Adam 2e-4 with 5,000 warmup steps, gradient clipping at 1, EMA 0.9999, batch 128, 800k steps;
the paper's random horizontal flips are not applied here. Set --config.model.dtype=bfloat16 on
accelerators. `test_bpd` here is the full VLB on `num_eval_examples` test images.

Command (prepares CIFAR-10 with TFDS on first use; needs network access then):
    python -m experiments.run --config experiments/configs/ddpm_cifar10.py --workdir /tmp/dc10

Hardware and runtime: the paper trained on a TPU v3-8 for about 10.6 hours per 100k steps, so
800k steps take about 3.5 days there, or a similar time on 8 modern GPUs. Measured on one H200
(bf16, batch 128): 23.7 ms per training step, so about 5.3 hours per 800k steps of training
alone. Not run to the end here.
Expected result: the paper's FID 3.17 and NLL <= 3.75 bits/dim on the test set (not measured
here; FID needs `python -m experiments.evaluate`, 50k samples).
Source: Ho et al. 2020, Table 1 (FID of 50k samples, NLL on the test set).
"""

import ml_collections

from experiments.configs import _data, _ddpm


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 800_000
    config.batch_size = 128
    config.eval_batch_size = 128
    config.log_every = 100
    config.checkpoint_every = 5000
    config.eval_every = 50_000
    config.keep_checkpoints = 3
    config.ema_decay = 0.9999
    config.num_samples = 64
    config.num_eval_examples = 256

    config.data = _data.cifar10()

    config.model = ml_collections.ConfigDict()
    config.model.name = "ddpm"
    config.model.ch = 128
    config.model.ch_mult = (1, 2, 2, 2)
    config.model.num_res_blocks = 2
    config.model.attn_resolutions = (16,)
    config.model.num_groups = 32
    config.model.dropout = 0.1
    config.model.dtype = "float32"
    _ddpm.add_diffusion(config.model, schedule="linear", num_steps=1000, prediction="eps")

    config.sampler = ml_collections.ConfigDict()
    config.sampler.name = "ddim"
    config.sampler.num_steps = 100
    config.sampler.spacing = "leading"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 5000
    config.optim.schedule = "constant"
    config.optim.grad_clip = 1.0
    return config
