"""The VAE of Burda et al. (2016) on dynamically binarized MNIST, in nats.

One stochastic layer of 50 Gaussian units between two deterministic layers of 200 tanh units
each way, a Bernoulli decoder, trained on the ELBO with k samples (k = 1 by default). Two
stochastic layers (100 and 50 units; 100-100 tanh between them): --config.model.latent_dim=100
--config.model.latent_dim2=50. The IWAE bound with the same networks: iwae_mnist.

Command (MNIST-format files in a folder, or --config.data.source=tfds --config.data.name=mnist):
    python -m experiments.run --config experiments/configs/vae_mnist.py --workdir /tmp/vm \\
        --config.data.path=/path/to/mnist

A short run on the real MNIST test split (train on its first 8,000 images, evaluate on the last
2,000), as the README reports it: add --config.data.train_split='test[:8000]'
--config.data.test_split='test[8000:]' --config.num_steps=5000.

Hardware and runtime: the short run took 520 s on this project's 2-core CPU shared with other
jobs (5,000 steps, then the K = 5000 likelihood of 2,000 images); alone, the same CPU trains
about 210 steps/s, so the full 1M steps take about 80 minutes plus evaluation.
Expected result: the paper's 86.76 nats at full scale (not run here). Measured on the short
run: `test_nll` 114.35 nats, `test_nelbo` 118.96, `test_active_units` 43 of 50; with two
stochastic layers 151.30 nats, 8 of 150 active units (360 s; 85.33 in the paper).
Source: Burda et al. 2016, "Importance Weighted Autoencoders", Table 1 (test NLL from 5,000
importance samples): VAE k = 1, 86.76 nats with one stochastic layer, 85.33 with two.
"""

import ml_collections

from experiments.configs import _data


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 1_000_000
    config.batch_size = 100
    config.eval_batch_size = 500
    config.log_every = 500
    config.checkpoint_every = 10_000
    config.eval_every = 100_000
    config.keep_checkpoints = 3
    config.ema_decay = 0.0
    config.num_samples = 100

    config.data = _data.binarized_mnist()

    config.model = ml_collections.ConfigDict()
    config.model.name = "vae"
    config.model.class_conditional = False
    config.model.network = "mlp"
    config.model.latent_dim = 50
    config.model.latent_dim2 = 0
    config.model.hidden = (200, 200)
    config.model.hidden2 = (100, 100)
    config.model.activation = "tanh"
    config.model.likelihood = "bernoulli"
    config.model.k = 1
    config.model.gradient = "reparam"  # iwae only: "dreg" for the DReG encoder gradient
    config.model.beta = 1.0
    config.model.free_bits = 0.0
    config.model.free_bits_groups = 1
    config.model.kl_warmup_steps = 0
    config.model.eval_samples = 5000
    config.model.eval_chunk = 100

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 0
    config.optim.schedule = "cosine"
    config.optim.grad_clip = 0.0
    return config
