"""Multi-scale RealNVP (Dinh et al. 2017) on scikit-learn's 8x8 digits, in bits/dim.

Data: 1,437 training and 360 test digits (stratified split), uniformly dequantized and scaled to
[0, 1]; the model starts with RealNVP's logit preprocessing, whose Jacobian is counted.
`test_bpd` is in 8-bit pixel space: the 17 grey levels of the digits are stored as uint8.

Command:
    python -m experiments.run --config experiments/configs/realnvp_digits.py --workdir /tmp/rd
    python -m experiments.sample --workdir /tmp/rd --num 64 --out /tmp/rd.npy

Hardware and runtime: about 10 minutes on a 2-core CPU (572 s measured, 6 steps/s, with the
machine shared with another job; a conv conditioner 16 channels wide, one residual block, batch
64).
Expected result: `test_bpd` 4.81 on the 360 test digits (measured; 4.83 at step 1,500).
Source: no published number for this dataset.
"""

import ml_collections

from experiments.configs._flows import digits_image_flow


def get_config() -> ml_collections.ConfigDict:
    return digits_image_flow("realnvp_image", num_steps=3000, eval_every=1500, model_steps=3)
