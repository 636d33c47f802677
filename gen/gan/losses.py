"""GAN losses: each one function of the discriminator's outputs on real and fake data that
returns both players' losses (compare_gan's ``loss_lib`` shape); ``model.loss`` picks one.

With ``r = D(x)`` and ``f = D(G(z))`` the discriminator's raw outputs (logits, or critic values),
each averaged over the batch:

==================  =========================================  ==========================
name                discriminator minimizes                    generator minimizes
==================  =========================================  ==========================
``non_saturating``  ``softplus(-r) + softplus(f)``             ``softplus(-f)``
``minimax``         ``softplus(-r) + softplus(f)``             ``-softplus(f)``
``wasserstein``     ``f - r``                                  ``-f``
``hinge``           ``relu(1 - r) + relu(1 + f)``              ``-f``
``least_squares``   ``((r - 1)^2 + f^2) / 2``                  ``(f - 1)^2 / 2``
==================  =========================================  ==========================

``softplus(-r) = -log sigmoid(r)``, so the first two are the cross-entropy of Goodfellow et al.
(2014): the minimax generator minimizes ``log(1 - D(G(z)))`` and the non-saturating one
``-log D(G(z))``. Wasserstein is Arjovsky et al. (2017) (with weight clipping,
:func:`clip_weights`, or a gradient penalty, ``gen.gan.penalties``), hinge is Lim & Ye (2017) /
Miyato et al. (2018), least squares is Mao et al. (2017) with targets a=0, b=1, c=1. No
generator loss depends on ``r``, so a generator update needs no pass over real data.

Example::

    >>> import jax.numpy as jnp
    >>> out = hinge(jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.0]))
    >>> float(out.discriminator), float(out.generator)
    (0.75, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen.errors import ConfigError

Array = jax.Array


class GANLoss(NamedTuple):
    """Both players' losses (scalars): each minimizes its own."""

    discriminator: Array
    generator: Array


def _f32(x: Array) -> Array:
    return jnp.asarray(x, jnp.float32)


def non_saturating(real: Array, fake: Array) -> GANLoss:
    """Cross-entropy D; G maximizes ``log D(G(z))`` (Goodfellow et al. 2014, section 3)."""
    real, fake = _f32(real), _f32(fake)
    d = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    return GANLoss(d, jnp.mean(jax.nn.softplus(-fake)))


def minimax(real: Array, fake: Array) -> GANLoss:
    """Cross-entropy D; G minimizes ``log(1 - D(G(z))) = -softplus(f)``: the zero-sum game."""
    real, fake = _f32(real), _f32(fake)
    d = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    return GANLoss(d, -jnp.mean(jax.nn.softplus(fake)))


def wasserstein(real: Array, fake: Array) -> GANLoss:
    """The critic maximizes ``E r - E f``; G maximizes ``E f`` (Arjovsky et al. 2017)."""
    real, fake = _f32(real), _f32(fake)
    return GANLoss(jnp.mean(fake) - jnp.mean(real), -jnp.mean(fake))


def hinge(real: Array, fake: Array) -> GANLoss:
    """Hinge D ``relu(1 - r) + relu(1 + f)``; G maximizes ``E f`` (Miyato et al. 2018)."""
    real, fake = _f32(real), _f32(fake)
    d = jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    return GANLoss(d, -jnp.mean(fake))


def least_squares(real: Array, fake: Array) -> GANLoss:
    """LSGAN (Mao et al. 2017) with a=0 (fake), b=1 (real), c=1 (G's target)."""
    real, fake = _f32(real), _f32(fake)
    d = 0.5 * jnp.mean((real - 1.0) ** 2) + 0.5 * jnp.mean(fake**2)
    return GANLoss(d, 0.5 * jnp.mean((fake - 1.0) ** 2))


LOSSES: dict[str, Callable[[Array, Array], GANLoss]] = {
    "non_saturating": non_saturating,
    "minimax": minimax,
    "wasserstein": wasserstein,
    "hinge": hinge,
    "least_squares": least_squares,
}


def get_loss(name: str) -> Callable[[Array, Array], GANLoss]:
    """The loss called ``name``; a one-line :class:`ConfigError` for an unknown one."""
    if name not in LOSSES:
        raise ConfigError(f"model.loss={name!r} is not a GAN loss; use one of "
                          f"{', '.join(LOSSES)}.")
    return LOSSES[name]


def clip_weights(params, bound: float):
    """Every weight clipped to ``[-bound, bound]`` (WGAN's Lipschitz constraint)."""
    return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)
