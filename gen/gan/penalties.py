"""Gradient penalties on the discriminator (compare_gan's ``penalty_lib``); ``model.penalty``
picks one and ``model.penalty_weight`` scales it in the discriminator's loss.

``critic(x) -> (B,)`` is the discriminator's output on a batch, one value per example (so the
gradient of ``sum(critic(x))`` is each example's own input gradient):

=============  ==========================================================  =====================
name           penalty                                                     paper
=============  ==========================================================  =====================
``wgan_gp``    ``E (|grad D(x_hat)| - 1)^2``, ``x_hat = e x + (1 - e) x~``  Gulrajani et al. 2017
``r1``         ``E |grad D(x)|^2 / 2`` on real data                        Mescheder et al. 2018
``r2``         ``E |grad D(x~)|^2 / 2`` on generated data                  Mescheder et al. 2018
=============  ==========================================================  =====================

with ``e ~ U[0, 1]`` per example and norms over all of an example's dimensions. With the 1/2
inside, ``penalty_weight`` is Mescheder et al.'s gamma for R1 and R2, and the lambda (10) of
WGAN-GP. The penalty is computed in float32 whatever the network's compute dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen.errors import ConfigError

Array = jax.Array
Critic = Callable[[Array], Array]

PENALTIES = ("none", "wgan_gp", "r1", "r2")


def _squared_grad_norms(critic: Critic, x: Array) -> Array:
    """``|grad_x critic(x)_i|^2`` per example ``i``, shape (B,)."""
    grads = jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(x)
    return jnp.sum(jnp.square(grads.astype(jnp.float32)).reshape(len(x), -1), axis=1)


def wgan_gp(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
    """``E (|grad D(x_hat)|_2 - 1)^2`` on random interpolates of real and fake examples."""
    eps = jax.random.uniform(key, (len(real),) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake
    # sqrt at 0 has an infinite derivative; the tiny floor keeps the penalty's gradient finite.
    norms = jnp.sqrt(_squared_grad_norms(critic, x_hat) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


def r1(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
    """``E |grad D(x)|^2 / 2`` on real examples."""
    del fake, key
    return 0.5 * jnp.mean(_squared_grad_norms(critic, real))


def r2(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
    """``E |grad D(x~)|^2 / 2`` on generated examples."""
    del real, key
    return 0.5 * jnp.mean(_squared_grad_norms(critic, fake))


def get_penalty(name: str, weight: float) -> Callable[[Critic, Array, Array, Array], Array] | None:
    """The weighted penalty ``weight * penalty(critic, real, fake, key)``, or ``None``.

    One-line :class:`ConfigError` for an unknown name or a negative weight.
    """
    if name not in PENALTIES:
        raise ConfigError(f"model.penalty={name!r} is not a penalty; use one of "
                          f"{', '.join(PENALTIES)}.")
    if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight >= 0:
        raise ConfigError(f"model.penalty_weight must be a number >= 0, got {weight!r}.")
    if name == "none" or weight == 0:
        return None
    fn = {"wgan_gp": wgan_gp, "r1": r1, "r2": r2}[name]
    weight = float(weight)
    return lambda critic, real, fake, key: weight * fn(critic, real, fake, key)
