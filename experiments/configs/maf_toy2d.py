"""MAF (Papamakarios et al. 2017): affine autoregressive layers (MADE) on a 2-D toy density.

Command:
    python -m experiments.run --config experiments/configs/maf_toy2d.py --workdir /tmp/maf
Other data: --config.data.name=checkerboard (moons, pinwheel, swissroll, circles, 2spirals), or
your own (N, 2) array with --config.data.source=npy --config.data.path=train.npy

Hardware and runtime: about 1 minute on a 2-core CPU (55 s measured).
Expected result: `test_nll` 2.895 nats on 8gaussians in eval.json (measured, on 20,000 held-out
points), against the true entropy of 2.832 (splines do better: see nsf_toy2d).
Source: no published number for this toy; the entropy is gen.data.toy2d.entropy.
"""

import ml_collections

from experiments.configs._flows import toy2d_flow


def get_config() -> ml_collections.ConfigDict:
    config = toy2d_flow("maf", num_layers=8)
    config.model.transformer = "affine"
    return config
