"""The IWAE of Burda et al. (2016) on dynamically binarized MNIST, in nats.

The networks of vae_mnist trained on the importance-weighted bound L_k, k = 50 by default
(--config.model.k=5 or 1 for the table's other columns); two stochastic layers with
--config.model.latent_dim=100 --config.model.latent_dim2=50. --config.model.gradient=dreg
uses the DReG encoder gradient (Tucker et al. 2019) instead of the reparameterization one.

Command (MNIST-format files in a folder, or --config.data.source=tfds --config.data.name=mnist):
    python -m experiments.run --config experiments/configs/iwae_mnist.py --workdir /tmp/im \\
        --config.data.path=/path/to/mnist

Hardware and runtime: TBD.
Expected result: TBD.
Source: Burda et al. 2016, "Importance Weighted Autoencoders", Table 1 (test NLL from 5,000
importance samples): IWAE k = 50, 84.78 nats with one stochastic layer, 82.90 with two.
"""

from experiments.configs import vae_mnist


def get_config():
    config = vae_mnist.get_config()
    config.model.name = "iwae"
    config.model.k = 50
    return config
