"""Class-conditional DDPM on 8x8 digits with classifier-free guidance (Ho & Salimans 2022).

The UNet gets a class embedding with an extra null class; labels are dropped to the null class
with probability 0.1 during training, and sampling mixes the two predictions with guidance scale
w: eps = eps(x | null) + w (eps(x | y) - eps(x | null)).

Command:
    python -m experiments.run --config experiments/configs/ddpm_digits_cfg.py --workdir /tmp/dc
    python -m experiments.sample --workdir /tmp/dc --num 64 --out /tmp/dc.npy
Other guidance: --config.sampler.guidance_scale=1.0 (plain conditional), 3.0 (sharper).
Per class, one row each: python -m experiments.sample --workdir /tmp/dc --num 100 \\
    --labels 0,1,2,3,4,5,6,7,8,9 --out /tmp/dc.npy

Hardware and runtime: about 10 minutes on a 2-core CPU (565 s measured: 3,000 steps at 5.8
steps/s, plus the VLB).
Expected result: `test_bpd` 5.44 (measured: the class-conditional VLB on 120 test digits, with
their labels); samples follow the requested class (experiments/results/ddpm_digits_cfg.png).
Source: no published number for this dataset.
"""

from experiments.configs import ddpm_digits


def get_config():
    config = ddpm_digits.get_config()
    config.num_steps = 3000
    config.model.class_conditional = True
    config.model.guidance = True
    config.model.label_dropout = 0.1
    config.sampler.guidance_scale = 2.0
    return config
