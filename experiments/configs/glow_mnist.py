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

from experiments.configs._flows import mnist_image_flow


def get_config() -> ml_collections.ConfigDict:
    return mnist_image_flow("glow", model_steps=16, hidden_channels=128, num_blocks=1)
