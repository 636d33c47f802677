"""RealNVP (Dinh et al. 2017): affine couplings with MLP conditioners on a 2-D toy density.

Command:
    python -m experiments.run --config experiments/configs/realnvp_toy2d.py --workdir /tmp/rnvp
Other data: --config.data.name=checkerboard (moons, pinwheel, swissroll, circles, 2spirals), or
your own (N, 2) array with --config.data.source=npy --config.data.path=train.npy

Hardware and runtime: about 2 minutes on a 2-core CPU (106 s measured).
Expected result: `test_nll` 2.891 nats on 8gaussians in eval.json (measured, on 20,000
held-out points), against the true entropy of 2.832 (splines do better: see nsf_toy2d).
Source: no published number for this toy; the entropy is gen.data.toy2d.entropy.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 6000
    config.batch_size = 512
    config.log_every = 500
    config.checkpoint_every = 2000
    config.eval_every = 3000
    config.keep_checkpoints = 2
    config.ema_decay = 0.0
    config.num_samples = 2000

    config.data = ml_collections.ConfigDict()
    config.data.source = "toy2d"
    config.data.name = "8gaussians"
    config.data.num_train = 200_000
    config.data.num_test = 20_000
    config.data.path = ""
    config.data.test_path = ""

    config.model = ml_collections.ConfigDict()
    config.model.name = "realnvp"
    config.model.num_layers = 10
    config.model.hidden = (128, 128)
    config.model.transformer = "affine"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 200
    config.optim.schedule = "cosine"
    config.optim.grad_clip = 5.0
    return config
