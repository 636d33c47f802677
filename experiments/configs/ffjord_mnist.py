"""FFJORD (Grathwohl et al. 2019) on MNIST, in bits/dim: the paper's multiscale model, for a GPU.

The paper's ODENVP: the logit transform (alpha 1e-6), then 3 scales on (28, 28, 1) events. Each
of the first two runs 2 CNF blocks, a squeeze, 2 more blocks and factors out half the channels;
the last runs 2 blocks on (7, 7, 4): 10 blocks in all. Each block is a time-concatenated 3x3
convolutional net (64-64-64 channels, softplus) on [0, T] with T = 1 fixed
(--config.model.learn_time=True trains it, FFJORD's train_T), solved by dopri5 at
rtol = atol = 1e-5, with Hutchinson's trace (one Rademacher probe per block) for training and
for the test-set estimate.
The paper's command: train_cnf.py --data mnist --dims 64,64,64 --strides 1,1,1,1
--num_blocks 2 --layer_type concat --multiscale True --rademacher True (batch 200, lr 1e-3).

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/ffjord_mnist.py --workdir /tmp/fm \\
        --config.data.path=/path/to/mnist
    python -m experiments.run --config experiments/configs/ffjord_mnist.py --workdir /tmp/fm \\
        --config.data.source=tfds --config.data.name=mnist
Single scale, the earlier version of this config: --config.model.num_scales=1.
The short development run on the real MNIST test split in ../shared/data/mnist (train on its
first 8,000 images, evaluate on the last 2,000), CPU-sized: 16-channel nets, one block per
stack (5 blocks), 4 fixed Heun steps instead of dopri5:
    python -m experiments.run --config experiments/configs/ffjord_mnist.py --workdir /tmp/fm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=400 \\
        --config.model.hidden='(16,16,16)' --config.model.num_blocks=1 --config.batch_size=32 \\
        --config.eval_batch_size=100 --config.eval_every=400 --config.checkpoint_every=200 \\
        --config.optim.warmup_steps=50 --config.model.solver=heun --config.model.num_steps=4 \\
        --config.num_samples=16

Hardware and runtime: at full size, one modern GPU (H100 / A100 class) for days, as for the
paper (not measured here; far too slow for a CPU). The short run above took 2,027 s on a
2-core CPU (about 5 s per step; other work ran beside it for part of the time). Its tiny run in
tests/test_configs.py (Heun, 8 channels, 2 scales, 1 block per stack, 2 steps) took 7 s.
Expected result: at full scale, the paper's 0.99 bits/dim on the MNIST test set (not measured
here). The short run above reaches `test_bpd` 1.61 on the last 2,000 test images (measured,
Hutchinson's estimate); its samples are blobs, not yet digits.
Source: FFJORD paper (Grathwohl et al. 2019), Table 2, FFJORD row.
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 100_000
    config.batch_size = 200
    config.eval_batch_size = 200
    config.log_every = 100
    config.checkpoint_every = 2000
    config.eval_every = 10_000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 64

    config.data = _data.mnist(scale="unit", dequantize="uniform")

    config.model = ml_collections.ConfigDict()
    config.model.name = "ffjord"
    config.model.hidden = (64, 64, 64)
    config.model.num_blocks = 2  # CNF blocks per stack (two stacks per scale, one at the last)
    config.model.num_scales = 3  # FFJORD's rule: halve while H, W >= 4 (28, 14, 7)
    config.model.activation = "softplus"
    config.model.logit = 1e-6
    config.model.time = 1.0
    config.model.learn_time = False
    config.model.solver = "dopri5"
    config.model.num_steps = 20  # for fixed-step solvers only
    config.model.rtol = 1e-5
    config.model.atol = 1e-5
    config.model.eval_rtol = 1e-5
    config.model.eval_atol = 1e-5
    config.model.max_steps = 1000
    config.model.adjoint = "recursive"
    config.model.train_trace = "hutchinson"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 500
    config.optim.schedule = "cosine"
    config.optim.grad_clip = 100.0
    return config
