"""Multi-scale RealNVP (Dinh et al. 2017) on MNIST, in bits/dim.

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/realnvp_mnist.py --workdir /tmp/rm \\
        --config.data.path=/path/to/mnist
    python -m experiments.run --config experiments/configs/realnvp_mnist.py --workdir /tmp/rm \\
        --config.data.source=tfds --config.data.name=mnist
The short development run on the real MNIST test split in ../shared/data/mnist (train on its
first 8,000 images, evaluate on the last 2,000), with a CPU-sized conditioner:
    python -m experiments.run --config experiments/configs/realnvp_mnist.py --workdir /tmp/rm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=1500 \\
        --config.model.hidden_channels=16 --config.model.num_blocks=1 --config.batch_size=32 \\
        --config.eval_every=1500 --config.optim.warmup_steps=100

Hardware and runtime: a full run (batch 64, 100k steps) needs one modern GPU for roughly half a
day; this config at full size is far too slow for a CPU. The short run above took 1,080 s on a
2-core CPU (1.4 steps/s, the machine shared with other jobs).
Expected result: at full scale, the paper's 1.06 bits/dim on the MNIST test set (not measured
here). The short run above reaches `test_bpd` 1.83 on the last 2,000 test images
(measured); its samples are blobs and strokes, not yet digits.
Source: FFJORD paper (Grathwohl et al. 2019), Table 2, RealNVP row.
"""

import ml_collections

from experiments.configs._flows import mnist_image_flow


def get_config() -> ml_collections.ConfigDict:
    return mnist_image_flow("realnvp_image", model_steps=3, hidden_channels=64, num_blocks=4)
