"""Glow (Kingma & Dhariwal 2018) on MNIST, in bits/dim.

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/glow_mnist.py --workdir /tmp/gm \\
        --config.data.path=/path/to/mnist
    python -m experiments.run --config experiments/configs/glow_mnist.py --workdir /tmp/gm \\
        --config.data.source=tfds --config.data.name=mnist
The short development run on the real MNIST test split in ../shared/data/mnist (train on its
first 8,000 images, evaluate on the last 2,000), with a CPU-sized model:
    python -m experiments.run --config experiments/configs/glow_mnist.py --workdir /tmp/gm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=1000 \\
        --config.model.num_steps=4 --config.model.hidden_channels=32 --config.batch_size=32 \\
        --config.eval_every=1000 --config.optim.warmup_steps=100

Hardware and runtime: a full run (batch 64, 100k steps) needs one modern GPU for roughly half a
day; this config at full size is far too slow for a CPU. The short run above took 1,096 s on a
2-core CPU (1.5 steps/s, the machine shared with other jobs).
Expected result: at full scale, the paper's 1.05 bits/dim on the MNIST test set (not measured
here). The short run above reaches `test_bpd` 3.13 on the last 2,000 test images
(measured): early training, nowhere near the paper's number.
Source: FFJORD paper (Grathwohl et al. 2019), Table 2, Glow row.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 100_000
    config.batch_size = 64
    config.eval_batch_size = 200
    config.log_every = 100
    config.checkpoint_every = 2000
    config.eval_every = 5000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 64

    config.data = ml_collections.ConfigDict()
    config.data.source = "idx"
    config.data.path = ""
    config.data.name = "mnist"  # for data.source=tfds
    config.data.train_split = "train"
    config.data.test_split = "test"
    config.data.scale = "unit"
    config.data.dequantize = "uniform"

    config.model = ml_collections.ConfigDict()
    config.model.name = "glow"
    config.model.num_scales = 2
    config.model.num_steps = 16
    config.model.hidden_channels = 128
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
    config.optim.warmup_steps = 500
    config.optim.schedule = "cosine"
    config.optim.grad_clip = 100.0
    return config
