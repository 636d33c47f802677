"""The IWAE of Burda et al. (2016) on dynamically binarized MNIST, in nats.

The networks of vae_mnist trained on the importance-weighted bound L_k, k = 50 by default
(--config.model.k=5 or 1 for the table's other columns); two stochastic layers with
--config.model.latent_dim=100 --config.model.latent_dim2=50. --config.model.gradient=dreg
uses the DReG encoder gradient (Tucker et al. 2019) instead of the reparameterization one.

Command (MNIST-format files in a folder, or --config.data.source=tfds --config.data.name=mnist):
    python -m experiments.run --config experiments/configs/iwae_mnist.py --workdir /tmp/im \\
        --config.data.path=/path/to/mnist

A short run on the real MNIST test split (train on its first 8,000 images, evaluate on the last
2,000), as the README reports it: add --config.data.train_split='test[:8000]'
--config.data.test_split='test[8000:]' --config.num_steps=5000.

Hardware and runtime: the short run with k = 50 took 2,340 s on this project's 2-core CPU shared
with other jobs (5,000 steps at about 2.5 steps/s under that load; alone the same CPU trains
about 10 steps/s with k = 50, so the full 1M steps need a GPU), k = 5 took 789 s.
Expected result: the paper's 84.78 nats (k = 50) and 85.54 (k = 5) at full scale (not run
here). Measured on the short run: `test_nll` 106.65 nats with k = 50 (`test_nelbo` 120.76),
109.70 with k = 5 (`test_nelbo` 117.82); vae_mnist's 114.35 on the same run. With two
stochastic layers: 122.78 nats with k = 5, 59 of 150 active units (273 s; 83.89 in the paper),
113.08 with k = 50, 100 active units (1,826 s on a shared CPU; 82.90 in the paper).
Source: Burda et al. 2016, "Importance Weighted Autoencoders", Table 1 (test NLL from 5,000
importance samples): IWAE k = 50, 84.78 nats with one stochastic layer, 82.90 with two; k = 5,
85.54 and 83.89.
"""

from experiments.configs import vae_mnist


def get_config():
    config = vae_mnist.get_config()
    config.model.name = "iwae"
    config.model.k = 50
    return config
