"""Class-conditional DDPM on 8x8 digits with classifier-free guidance (Ho & Salimans 2022).

The UNet gets a class embedding with an extra null class; labels are dropped to the null class
with probability 0.1 during training, and sampling mixes the two predictions with guidance scale
w: eps = eps(x | null) + w (eps(x | y) - eps(x | null)).

Command:
    python -m experiments.run --config experiments/configs/ddpm_digits_cfg.py --workdir /tmp/dc
    python -m experiments.sample --workdir /tmp/dc --num 64 --out /tmp/dc.npy
Other guidance: --config.sampler.guidance_scale=1.0 (plain conditional), 3.0 (sharper).

Runtime: about 15 minutes on a 2-core CPU (869 s measured for ddpm_digits: 6 steps/s, plus the VLB).
Expected result: samples/*.png show digits of the requested (random) classes; `test_bpd` is the
class-conditional VLB, below the unconditional ddpm_digits number. No published number for this
dataset; not yet measured.
"""

from experiments.configs import ddpm_digits


def get_config():
    config = ddpm_digits.get_config()
    config.model.class_conditional = True
    config.model.guidance = True
    config.model.label_dropout = 0.1
    config.sampler.guidance_scale = 2.0
    return config
