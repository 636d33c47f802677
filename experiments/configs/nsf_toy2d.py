"""Neural Spline Flow (Durkan et al. 2019, NSF-C) on a 2-D toy density.

Rational-quadratic spline couplings (K bins on [-B, B], linear tails) alternating with LU linear
layers, MLP conditioners, standard normal base.

Command:
    python -m experiments.run --config experiments/configs/nsf_toy2d.py --workdir /tmp/nsf_8g
    python -m experiments.run --config experiments/configs/nsf_toy2d.py --workdir /tmp/nsf_cb \\
        --config.data.name=checkerboard
    python -m experiments.sample --workdir /tmp/nsf_8g --num 2000 --out /tmp/nsf.npy
Your own (N, 2) float array: --config.data.source=npy --config.data.path=train.npy

Hardware and runtime: about 1 minute on a 2-core CPU (52 s on 8gaussians, 49 s on
checkerboard).
Expected result: `test_nll` within 0.03 nats of the true entropy, on 20,000 held-out points:
measured 2.8309 nats on 8gaussians (entropy 2.8320) and 3.4921 on checkerboard (log 32 =
3.4657).
Source: the target is this project's (no published number for these toys); the entropies are
exact (checkerboard) or a 1e6-sample Monte Carlo estimate (8gaussians), gen.data.toy2d.entropy,
of the FFJORD toy set.
"""

import ml_collections

from experiments.configs._flows import toy2d_flow


def get_config() -> ml_collections.ConfigDict:
    config = toy2d_flow("nsf", num_layers=6)
    config.model.num_bins = 16
    config.model.bound = 5.0
    return config
