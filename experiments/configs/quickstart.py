"""Quickstart: RealNVP (8 MLP affine couplings) on the two-moons density.

Command:
    python -m experiments.run --config experiments/configs/quickstart.py --workdir /tmp/quickstart

Hardware and runtime: about 23 s on a 2-core CPU (22.8 s measured for the whole command on a
quiet machine: 3,000 steps at batch 256, about 155 steps/s, plus startup, compilation and
evaluation; training alone took 17 to 22 s on different days, and a loaded machine takes longer).
Expected result: `test_nll` 2.45 nats on the 10,000 held-out moons points in `eval.json` (2.4490
measured), and `samples/0003000.png` showing the data, the model's samples and its density side
by side. The two-moons density (gen.data.toy2d) has an entropy of about 2.39 nats, so no model
can go much below that.
Source: none; this is a smoke test of the whole stack, not a reproduction.
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 3000
    config.batch_size = 256
    config.log_every = 100
    config.checkpoint_every = 1000
    config.eval_every = 1000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 2000  # drawn for each picture in samples/

    # To train on your own (N, 2) float array instead: --config.data.source=npy
    # --config.data.path=train.npy [--config.data.test_path=test.npy]
    config.data = _data.toy2d("moons", num_test=10_000)

    config.model = ml_collections.ConfigDict()
    config.model.name = "realnvp"
    config.model.num_layers = 8
    config.model.hidden = (128, 128)
    config.model.transformer = "affine"

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 100
    config.optim.schedule = "constant"
    config.optim.grad_clip = 1.0
    return config
