"""DCGAN (Radford et al. 2016) on scikit-learn's 8x8 digits, judged by classifier-feature FID and
precision/recall.

The DCGAN generator and discriminator at 8x8 (32 base channels, a 32-d latent), the
non-saturating loss, Adam 2e-4 with beta1 0.5 for both players, batch 64, 12k steps, samples
from the generator's EMA (0.999 after 500 steps). The eval.json gets the FID and
precision/recall of 1,000 samples against the 360 test digits in the features of the digits
classifier (`fid_classifier`, `precision_classifier`, `recall_classifier`; gen.metrics).

Command:
    python -m experiments.run --config experiments/configs/dcgan_digits.py --workdir /tmp/dcd
    python -m experiments.sample --workdir /tmp/dcd --num 64 --out /tmp/dcd.npy
Class-conditional (conditional BatchNorm in G, a projection discriminator), one row per class:
    python -m experiments.run --config experiments/configs/dcgan_digits.py --workdir /tmp/dcc \\
        --config.model.class_conditional=True
    python -m experiments.sample --workdir /tmp/dcc --num 100 --labels 0,1,2,3,4,5,6,7,8,9 \\
        --out /tmp/dcc.npy

Hardware and runtime: 214 s on a 2-core CPU shared with other jobs (measured: 12,000 steps,
evaluation included).
Expected result: `fid_classifier` 4.13, `precision_classifier` 0.853, `recall_classifier`
0.811 (measured, seed 0; experiments/results/dcgan_digits.png). With
--config.model.diffaugment=translation,cutout: 7.26, 0.741, 0.750 (DiffAugment does not pay
off at this size and length).
Source: no published number for this dataset; the metrics are gen.metrics' (README).
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 12_000
    config.batch_size = 64
    config.log_every = 200
    config.checkpoint_every = 4000
    config.eval_every = 4000
    config.keep_checkpoints = 3
    config.num_samples = 64
    config.ema_decay = 0.999
    config.ema_start = 500

    config.data = _data.digits(scale="symmetric", dequantize="none")

    config.model = ml_collections.ConfigDict()
    config.model.name = "dcgan"
    config.model.loss = "non_saturating"
    config.model.penalty = "none"
    config.model.penalty_weight = 0.0
    config.model.n_dis = 1
    config.model.latent_dim = 32
    config.model.ch = 32
    config.model.spectral_norm = False
    config.model.diffaugment = ""
    config.model.class_conditional = False

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 2e-4
    config.optim.b1 = 0.5
    config.optim.b2 = 0.999

    config.eval = ml_collections.ConfigDict()
    config.eval.metrics = ("fid", "precision_recall")
    config.eval.num_samples = 1000
    return config
