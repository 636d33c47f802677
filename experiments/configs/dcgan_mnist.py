"""DCGAN (Radford et al. 2016) on MNIST, judged by classifier-feature FID and precision/recall.

PLACEHOLDER

Command (data from a local folder of MNIST-format files, or from TFDS):
    python -m experiments.run --config experiments/configs/dcgan_mnist.py --workdir /tmp/dcm \\
        --config.data.path=/path/to/mnist
The short CPU run on the real MNIST test split in ../shared/data/mnist (train on its first
8,000 images, evaluate against the last 2,000):
    python -m experiments.run --config experiments/configs/dcgan_mnist.py --workdir /tmp/dcm \\
        --config.data.path=../shared/data/mnist --config.data.train_split='test[:8000]' \\
        --config.data.test_split='test[8000:]' --config.num_steps=TBD

Hardware and runtime: TBD 1 s on a 2-core CPU.
Expected result: TBD 1.
Source: no published number in this setting; the metrics are gen.metrics' (README).
"""

import ml_collections


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

    config.data = ml_collections.ConfigDict()
    config.data.source = "idx"
    config.data.path = ""
    config.data.name = "mnist"  # for data.source=tfds
    config.data.train_split = "train"
    config.data.test_split = "test"
    config.data.scale = "symmetric"
    config.data.dequantize = "none"

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
