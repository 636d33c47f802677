"""DCGAN (Radford et al. 2016) on MNIST, judged by classifier-feature FID and precision/recall.

The DCGAN generator and discriminator at 28x28 (64 base channels at full size, a 64-d latent),
the non-saturating loss, Adam 2e-4 with beta1 0.5 for both players, batch 64, samples from the
generator's EMA (0.999 after 500 steps). Sample quality comes from `python -m
experiments.evaluate`: the FID and precision/recall in the features of gen's MNIST classifier,
trained on the run's own training split (`fid_classifier`, `precision_classifier`,
`recall_classifier`).

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/dcgan_mnist.py --workdir /tmp/dcm \\
        --config.data.path=/path/to/mnist
The short CPU run on the real MNIST test split in ../shared/data/mnist (train on its first
8,000 images, evaluate against the last 2,000):
    python -m experiments.run --config experiments/configs/dcgan_mnist.py --workdir /tmp/dcm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=3000 --config.model.ch=32 \
        --config.eval_every=3000
    python -m experiments.evaluate --workdir /tmp/dcm --num 2000 --metrics fid,precision_recall

Hardware and runtime: the short run took 887 s on a 2-core CPU shared with other jobs (3,000
steps at about 3.5 steps/s; XLA's CPU convolutions dominate). A full run (60k training images,
20k steps, 64 channels) wants a GPU.
Expected result: the short run reaches `fid_classifier` 220, `precision_classifier` 0.283 and
`recall_classifier` 0.448 (measured: 2,000 samples against the 2,000 held-out test images):
stroke-like digits after a few minutes of training (experiments/results/dcgan_mnist_short.png),
far from converged.
Source: no published number in this setting; the metrics are gen.metrics' (README).
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 20_000
    config.batch_size = 64
    config.log_every = 200
    config.checkpoint_every = 1000
    config.eval_every = 5000
    config.keep_checkpoints = 3
    config.num_samples = 64
    config.ema_decay = 0.999
    config.ema_start = 500

    config.data = _data.mnist(scale="symmetric", dequantize="none")

    config.model = ml_collections.ConfigDict()
    config.model.name = "dcgan"
    config.model.loss = "non_saturating"
    config.model.penalty = "none"
    config.model.penalty_weight = 0.0
    config.model.n_dis = 1
    config.model.latent_dim = 64
    config.model.ch = 64
    config.model.spectral_norm = False
    config.model.diffaugment = ""
    config.model.class_conditional = False

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.b1 = 0.5
    config.optim.b2 = 0.999
    return config
