"""Glow (Kingma & Dhariwal 2018) on scikit-learn's 8x8 digits, in bits/dim.

Data: 1,437 training and 360 test digits (stratified split), uniformly dequantized and scaled to
[0, 1]. Each step: ActNorm (initialized from data), invertible 1x1 conv, affine coupling.
`test_bpd` is in 8-bit pixel space: the 17 grey levels of the digits are stored as uint8.

Command:
    python -m experiments.run --config experiments/configs/glow_digits.py --workdir /tmp/gd
    python -m experiments.sample --workdir /tmp/gd --num 64 --out /tmp/gd.npy

Hardware and runtime: about 90 s on a 2-core CPU (2,000 steps at 27 steps/s; 2 scales x 4
steps, a conditioner 16 channels wide with one residual block, batch 64).
Expected result: `test_bpd` 5.46 on the 360 test digits (measured; 5.49 at step 1,000). Wider
or deeper Glows overfit the 1,437 training digits: 8 steps per scale and 32 channels went from
5.84 bits/dim at step 2,000 to 7.71 at step 4,000 while the training loss kept falling.
Source: no published number for this dataset.
"""

import ml_collections

from experiments.configs._flows import digits_image_flow


def get_config() -> ml_collections.ConfigDict:
    return digits_image_flow("glow", num_steps=2000, eval_every=1000, model_steps=4)
