"""The VAE family: VAE, beta-VAE, IWAE (with DReG), CVAE, a two-layer VAE and VQ-VAE.

Every part is a pure function over explicit params, re-exported here:

- ``likelihoods``: decoder distributions (Gaussian, Bernoulli, discretized logistic mixture);
- ``objectives``: analytic KL, free bits, KL warm-up, the ELBO loss, the IWAE bound, DReG;
- ``models``: the one-layer VAE (MLP or conv, optionally conditional) and the two-layer VAE as
  :class:`LatentModel` NamedTuples of pure functions;
- ``evaluation``: the importance-sampled log-likelihood and active units;
- ``quantizer`` and ``prior``: the VQ-VAE's vector quantizer and its PixelCNN code prior;
- ``training``: ``build_task(config, spec)`` for ``model.name`` in vae, iwae, vqvae.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen import vae
    >>> lik = vae.bernoulli((784,))
    >>> model = vae.vae(lik, latent_dim=50, hidden=(200, 200))
    >>> x = jnp.zeros((8, 784))
    >>> params = model.init(jax.random.key(0), x)
    >>> eps = model.noise(jax.random.key(1), 5, 8)           # k = 5 samples per example
    >>> vae.iwae_bound(model.log_weights(params, x, None, eps)).shape
    (8,)
"""

from gen.vae.evaluation import ISResult, active_units, importance_sampled
from gen.vae.likelihoods import (
    LIKELIHOODS,
    Likelihood,
    bernoulli,
    dmol,
    dmol_num_params,
    gaussian,
    make_likelihood,
)
from gen.vae.models import LatentModel, two_layer_vae, vae
from gen.vae.objectives import (
    dreg_gradients,
    elbo_loss,
    free_bits_kl,
    gaussian_kl,
    gaussian_log_prob,
    group_kl,
    iwae_bound,
    kl_weight,
)
from gen.vae.prior import PixelCNNPrior, code_log_prob, sample_codes
from gen.vae.quantizer import (
    CodebookState,
    code_frequencies,
    ema_update,
    init_codebook,
    nearest_code,
    perplexity,
    restart_dead_codes,
    straight_through,
    vq_losses,
)

__all__ = [
    "LIKELIHOODS",
    "CodebookState",
    "ISResult",
    "LatentModel",
    "Likelihood",
    "PixelCNNPrior",
    "active_units",
    "bernoulli",
    "code_frequencies",
    "code_log_prob",
    "dmol",
    "dmol_num_params",
    "dreg_gradients",
    "elbo_loss",
    "ema_update",
    "free_bits_kl",
    "gaussian",
    "gaussian_kl",
    "gaussian_log_prob",
    "group_kl",
    "importance_sampled",
    "init_codebook",
    "iwae_bound",
    "kl_weight",
    "make_likelihood",
    "nearest_code",
    "perplexity",
    "restart_dead_codes",
    "sample_codes",
    "straight_through",
    "two_layer_vae",
    "vae",
    "vq_losses",
]
