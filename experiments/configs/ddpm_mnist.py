"""DDPM (Ho et al. 2020) on MNIST: a UNet, eps loss, linear schedule, T = 1000.

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/ddpm_mnist.py --workdir /tmp/dm \\
        --config.data.path=/path/to/mnist
    python -m experiments.run --config experiments/configs/ddpm_mnist.py --workdir /tmp/dm \\
        --config.data.source=tfds --config.data.name=mnist
The short development run on the real MNIST test split in ../shared/data/mnist (train on its
first 8,000 images, evaluate on the last 2,000), with a CPU-sized UNet:
    python -m experiments.run --config experiments/configs/ddpm_mnist.py --workdir /tmp/dm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=1000 --config.model.ch=32 \\
        --config.model.ch_mult='(1,2)' --config.model.num_res_blocks=1 \\
        --config.model.attn_resolutions='()' --config.batch_size=64 --config.ema_decay=0.99 \\
        --config.num_eval_examples=100 --config.eval_every=1000 --config.optim.warmup_steps=100

Hardware and runtime: a full run (100k steps at batch 128) takes a few hours on one modern GPU;
it is far too slow for a CPU at this size. The short run above took 1,101 s on a 2-core CPU
(1.3 steps/s; the VLB's 1,000 UNet passes take about 5 minutes).
Expected result: for the short run, `test_bpd` 2.33 (measured: the full discrete VLB on 100 of
the last 2,000 test images); its samples are strokes, not yet digits. A full run should fall
well below that; no paper reports DDPM bits/dim on MNIST in this setting (Glow's 1.05 bits/dim,
FFJORD paper Table 2, is the flows' reference point).
Source: no published number in this setting.
"""

import ml_collections

from experiments.configs import _data, _ddpm


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 100_000
    config.batch_size = 128
    config.eval_batch_size = 100
    config.log_every = 100
    config.checkpoint_every = 2000
    config.eval_every = 10_000
    config.keep_checkpoints = 3
    config.ema_decay = 0.9999
    config.num_samples = 64
    config.num_eval_examples = 200

    config.data = _data.mnist(scale="symmetric", dequantize="none")

    config.model = ml_collections.ConfigDict()
    config.model.name = "ddpm"
    config.model.ch = 64
    config.model.ch_mult = (1, 2, 2)
    config.model.num_res_blocks = 2
    config.model.attn_resolutions = (7,)
    config.model.num_groups = 16
    config.model.dropout = 0.1
    _ddpm.add_diffusion(config.model, schedule="linear", num_steps=1000, prediction="eps")

    config.sampler = ml_collections.ConfigDict()
    config.sampler.name = "ddim"
    config.sampler.num_steps = 50
    config.sampler.spacing = "leading"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 1000
    config.optim.schedule = "constant"
    config.optim.grad_clip = 1.0
    return config
